"""`shears_methods` is the one list of methods: the committed OpenAPI document, the client's
help and the client's data routing all follow it, and it refuses a registry that differs."""

import inspect
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from shears_client.cli import DATA_METHODS, LEARNED_METHODS
from shears_methods import METHODS, check_names, names

REPO = Path(__file__).resolve().parents[2]


def _method_schema() -> dict[str, object]:
    document = json.loads((REPO / "openapi.json").read_text())
    schema: dict[str, object] = document["components"]["schemas"]["PruneSpec"]["properties"][
        "method"
    ]
    return schema


def test_every_registered_method_is_in_the_openapi_method_union_and_nothing_else() -> None:
    mapping = _method_schema()["discriminator"]["mapping"]  # type: ignore[index]
    assert set(mapping) == set(METHODS)


def test_the_openapi_union_lists_the_methods_in_registry_order() -> None:
    refs = [member["$ref"] for member in _method_schema()["oneOf"]]  # type: ignore[attr-defined]
    mapping = _method_schema()["discriminator"]["mapping"]  # type: ignore[index]
    assert refs == [mapping[name] for name in METHODS]


def test_the_calibration_field_names_every_method_that_needs_it() -> None:
    document = json.loads((REPO / "openapi.json").read_text())
    calibration = document["components"]["schemas"]["PruneSpec"]["properties"]["calibration"]
    for name in names(need="calibration"):
        assert f"`{name}`" in calibration["description"]


def test_every_registered_method_is_named_in_the_submit_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "shears_cli", "submit", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    words = set(result.stdout.replace(",", " ").replace(";", " ").split())
    assert set(METHODS) <= words, set(METHODS) - words


def test_the_client_sends_data_as_calibration_or_training_by_the_methods_needs() -> None:
    assert {m.name for m in METHODS.values() if "calibration" in m.needs} == DATA_METHODS
    assert {m.name for m in METHODS.values() if "retrain" in m.needs} == LEARNED_METHODS


def test_a_family_is_named_by_its_needs() -> None:
    for method in METHODS.values():
        assert ("calibration" in method.needs) == (method.family == "calibrated"), method.name
        assert ("retrain" in method.needs) == (method.family == "learned"), method.name


def test_a_registry_that_misses_or_adds_a_method_is_refused() -> None:
    learned = names(family="learned")
    check_names("learned", learned, family="learned")
    with pytest.raises(RuntimeError, match=r"missing \['movement'\]"):
        check_names("learned", [n for n in learned if n != "movement"], family="learned")
    with pytest.raises(RuntimeError, match=r"undeclared \['magnitude'\]"):
        check_names("learned", [*learned, "magnitude"], family="learned")


def test_the_contracts_method_union_has_one_member_per_method_in_registry_order() -> None:
    from api_schemas.spec import PruneSpec

    union = PruneSpec.model_fields["method"].annotation
    members = get_args(union)
    assert [member.model_fields["name"].default for member in members] == list(METHODS)


def test_each_union_member_takes_its_entrys_options_with_their_defaults() -> None:
    from api_schemas.methods import MEMBERS

    for name, info in METHODS.items():
        member = MEMBERS[name]
        assert member.__name__ == info.title
        assert member().model_dump() == {"name": name, **info.defaults()}


def test_the_openapi_document_shows_each_methods_options_and_description() -> None:
    document = json.loads((REPO / "openapi.json").read_text())
    schemas = document["components"]["schemas"]
    for name, info in METHODS.items():
        schema = schemas[info.title]
        assert set(schema["properties"]) == {"name", *info.defaults()}, name
        assert schema["description"] == inspect.cleandoc(info.doc), name
        for option in info.options:
            assert schema["properties"][option.name].get("default") == option.default, name


def test_a_spec_naming_a_built_member_pickles_like_any_contract_object() -> None:
    from api_schemas.spec import PruneSpec

    spec = PruneSpec.model_validate({"sparsity": 0.5, "method": {"name": "sparsegpt"}})
    assert pickle.loads(pickle.dumps(spec)) == spec
