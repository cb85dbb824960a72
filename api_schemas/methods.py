"""The `method` union of the PruneSpec, built from the method registry (`shears_methods`): one
member per entry, in registry order, with the entry's options as validated fields. A method's
options, defaults, bounds, description and example are written once, in its entry; this
module only turns them into pydantic models (and so into the OpenAPI document)."""

from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, create_model

from shears_methods import METHODS, MethodInfo, Option


class MethodOptions(BaseModel):
    """What every member of the `method` union is: a tag `name` and the method's options,
    unknown keys refused. Each member narrows `name` to its own literal."""

    model_config = ConfigDict(extra="forbid")
    name: str


def _annotation(option: Option) -> Any:
    kind: Any = Literal[option.kind] if isinstance(option.kind, tuple) else option.kind
    return kind | None if option.nullable else kind


def _field(option: Option) -> tuple[Any, Any]:
    field = Field(
        default=option.default,
        description=option.description,
        ge=option.ge,
        gt=option.gt,
        le=option.le,
        lt=option.lt,
    )
    return _annotation(option), field


def _tag(name: str) -> Any:
    return Literal[name]


def _example(info: MethodInfo) -> dict[str, Any]:
    defaults = info.defaults()
    return {"name": info.name, **{key: defaults[key] for key in info.example}}


def member(info: MethodInfo) -> type[MethodOptions]:
    """The options model of one registry entry, titled as the entry says (its schema's name
    in the OpenAPI document), its docstring the entry's `doc`."""
    fields: dict[str, Any] = {
        "name": (_tag(info.name), Field(default=info.name, description="Method tag.")),
        **{option.name: _field(option) for option in info.options},
    }
    return create_model(
        info.title,
        __config__=ConfigDict(json_schema_extra={"examples": [_example(info)]}),
        __base__=MethodOptions,
        __doc__=info.doc,
        __module__=__name__,
        **fields,
    )


# Every member by method name, in registry order.
MEMBERS: dict[str, type[MethodOptions]] = {name: member(info) for name, info in METHODS.items()}
# Each also by its title in this module, where pickle and `repr` look a class up, as when the
# members were written out here (`api_schemas.methods.SparseGPTMethod`).
globals().update({model.__name__: model for model in MEMBERS.values()})

if TYPE_CHECKING:
    # The type checker sees what every member has; pydantic sees the discriminated union.
    Method: TypeAlias = MethodOptions
else:
    Method = Annotated[reduce(or_, MEMBERS.values()), Field(discriminator="name")]
