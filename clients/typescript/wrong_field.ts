// Must NOT compile: the generated types catch a misspelt field before any request is sent
// (tests/clients/test_typescript_types.py asserts tsc's error names `sparsty`).
import type { components } from "./shears.js";

export const typo: components["schemas"]["PruneSpec"] = {
  method: { name: "magnitude" },
  sparsty: 0.8,
};
