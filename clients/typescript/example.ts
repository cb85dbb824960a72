// Prune a model over HTTP with types generated from Shears' openapi.json:
//   npm ci && npm run generate && npm run check
// The compiler checks every body, path and response below against the spec.
import type { components, paths } from "./shears.js";

type Schemas = components["schemas"];
type CreateJobBody = paths["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"];
type AcceptedJob = paths["/v1/jobs"]["post"]["responses"][202]["content"]["application/json"];
type JobReport =
  paths["/v1/jobs/{job_id}/report"]["get"]["responses"][200]["content"]["application/json"];
type Problem = paths["/v1/jobs"]["post"]["responses"][422]["content"]["application/problem+json"];

// Zhu & Gupta's gradual schedule: sparsity rises on a cubic while the model retrains.
const gradual: Schemas["PruneSpec"] = {
  method: { name: "magnitude" },
  sparsity: 0.9,
  scope: "global",
  granularity: { kind: "unstructured" },
  schedule: { kind: "gradual", steps: 10, exponent: 3, initial_sparsity: 0 },
  retrain: { dataset_id: "ds_5b2e8f0c1a9d3e47", epochs: 10, lr: 0.001, loss: "cross_entropy" },
  outputs: ["model"],
};

// Wanda scores |w| * ||x|| from calibration inputs; 2:4 is what sparse tensor cores run.
const semiStructured: Schemas["PruneSpec"] = {
  method: { name: "wanda" },
  sparsity: 0.5,
  granularity: { kind: "n:m", n: 2, m: 4 },
  calibration: { dataset_id: "ds_5b2e8f0c1a9d3e47", samples: 128 },
};

async function call<T>(base: string, key: string, path: string, init: RequestInit = {}) {
  const response = await fetch(base + path, {
    ...init,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
  });
  if (!response.ok) {
    const problem = (await response.json()) as Problem;
    const fields = (problem.errors ?? []).map((e) => e.field).join(", ");
    throw new Error(`${problem.status} ${problem.title}: ${problem.detail} [${fields}]`);
  }
  return (await response.json()) as T;
}

export async function prune(
  base: string,
  key: string,
  modelId: string,
  spec: Schemas["PruneSpec"] = gradual,
): Promise<JobReport> {
  const body: CreateJobBody = { model_id: modelId, spec };
  let job = await call<AcceptedJob>(base, key, "/v1/jobs", {
    method: "POST",
    body: JSON.stringify(body),
  });
  const finished: Schemas["JobStatus"][] = ["succeeded", "failed", "cancelled"];
  while (!finished.includes(job.status)) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    job = await call<Schemas["Job"]>(base, key, `/v1/jobs/${job.id}`);
  }
  if (job.status !== "succeeded") {
    throw new Error(`job ${job.id} ${job.status}: ${job.error?.message ?? ""}`);
  }
  const report = await call<JobReport>(base, key, `/v1/jobs/${job.id}/report`);
  const achieved: number = report.sparsity.achieved;
  const layers: Schemas["LayerSparsity"][] = report.sparsity.layers;
  console.log(`sparsity ${achieved.toFixed(3)} over ${layers.length} tensors`);
  return report;
}

export const examples = { gradual, semiStructured };
