"""RFC 7643 schema model and the User, Enterprise User and Group schemas (§4.1, §4.2, §4.3).

Attribute names are case-insensitive (RFC 7643 §2.1); lookups here fold case and return the
canonical spelling, so everything downstream works with canonical names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Type(StrEnum):
    STRING = "string"
    BOOLEAN = "boolean"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATETIME = "dateTime"
    BINARY = "binary"
    REFERENCE = "reference"
    COMPLEX = "complex"


class Mutability(StrEnum):
    READ_ONLY = "readOnly"
    READ_WRITE = "readWrite"
    IMMUTABLE = "immutable"
    WRITE_ONLY = "writeOnly"


class Returned(StrEnum):
    ALWAYS = "always"
    NEVER = "never"
    DEFAULT = "default"
    REQUEST = "request"


class Uniqueness(StrEnum):
    NONE = "none"
    SERVER = "server"
    GLOBAL = "global"


@dataclass(frozen=True)
class Attribute:
    name: str
    type: Type = Type.STRING
    multi_valued: bool = False
    description: str = ""
    required: bool = False
    case_exact: bool = False
    mutability: Mutability = Mutability.READ_WRITE
    returned: Returned = Returned.DEFAULT
    uniqueness: Uniqueness = Uniqueness.NONE
    canonical_values: tuple[str, ...] = ()
    reference_types: tuple[str, ...] = ()
    sub_attributes: tuple[Attribute, ...] = ()

    def sub(self, name: str) -> Attribute | None:
        folded = name.lower()
        for attr in self.sub_attributes:
            if attr.name.lower() == folded:
                return attr
        return None

    def to_json(self) -> dict[str, object]:
        """The RFC 7643 §7 representation served by /Schemas."""
        body: dict[str, object] = {
            "name": self.name,
            "type": self.type.value,
            "multiValued": self.multi_valued,
            "description": self.description,
            "required": self.required,
        }
        if self.type in (Type.STRING, Type.REFERENCE, Type.BINARY):
            body["caseExact"] = self.case_exact
        if self.canonical_values:
            body["canonicalValues"] = list(self.canonical_values)
        if self.reference_types:
            body["referenceTypes"] = list(self.reference_types)
        if self.sub_attributes:
            body["subAttributes"] = [a.to_json() for a in self.sub_attributes]
        body["mutability"] = self.mutability.value
        body["returned"] = self.returned.value
        if self.type is not Type.COMPLEX:
            body["uniqueness"] = self.uniqueness.value
        return body


@dataclass(frozen=True)
class Schema:
    id: str
    name: str
    description: str
    attributes: tuple[Attribute, ...]

    def attribute(self, name: str) -> Attribute | None:
        folded = name.lower()
        for attr in self.attributes:
            if attr.name.lower() == folded:
                return attr
        return None

    def to_json(self, location: str) -> dict[str, object]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "attributes": [a.to_json() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": location},
        }


@dataclass(frozen=True)
class ResourceType:
    name: str
    endpoint: str
    description: str
    schema: Schema
    extensions: tuple[tuple[Schema, bool], ...] = field(default=())  # (schema, required)

    def extension(self, urn: str) -> Schema | None:
        folded = urn.lower()
        for ext, _required in self.extensions:
            if ext.id.lower() == folded:
                return ext
        return None

    def schema_for(self, urn: str) -> Schema | None:
        if urn.lower() == self.schema.id.lower():
            return self.schema
        return self.extension(urn)

    @property
    def schema_ids(self) -> tuple[str, ...]:
        return (self.schema.id, *(ext.id for ext, _ in self.extensions))

    def to_json(self, location: str) -> dict[str, object]:
        return {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": self.description,
            "schema": self.schema.id,
            "schemaExtensions": [
                {"schema": ext.id, "required": required} for ext, required in self.extensions
            ],
            "meta": {"resourceType": "ResourceType", "location": location},
        }


# --- Common attributes (RFC 7643 §3.1): every resource carries them --------------------------

ID = Attribute(
    "id",
    description="Unique identifier for the resource, assigned by the service provider.",
    required=False,
    case_exact=True,
    mutability=Mutability.READ_ONLY,
    returned=Returned.ALWAYS,
    uniqueness=Uniqueness.SERVER,
)
EXTERNAL_ID = Attribute(
    "externalId",
    description="Identifier of the resource as defined by the provisioning client.",
    case_exact=True,
)
META = Attribute(
    "meta",
    type=Type.COMPLEX,
    description="Resource metadata.",
    mutability=Mutability.READ_ONLY,
    sub_attributes=(
        Attribute("resourceType", case_exact=True, mutability=Mutability.READ_ONLY),
        Attribute("created", type=Type.DATETIME, mutability=Mutability.READ_ONLY),
        Attribute("lastModified", type=Type.DATETIME, mutability=Mutability.READ_ONLY),
        Attribute(
            "location",
            type=Type.REFERENCE,
            case_exact=True,
            mutability=Mutability.READ_ONLY,
            reference_types=("uri",),
        ),
        Attribute("version", case_exact=True, mutability=Mutability.READ_ONLY),
    ),
)
COMMON_ATTRIBUTES = (ID, EXTERNAL_ID, META)


def _multi(
    name: str,
    description: str,
    types: tuple[str, ...] = (),
    value_type: Type = Type.STRING,
    value_case_exact: bool = False,
    mutability: Mutability = Mutability.READ_WRITE,
    reference_types: tuple[str, ...] = (),
) -> Attribute:
    """The value/display/type/primary shape shared by most multi-valued attributes (§2.4)."""
    return Attribute(
        name,
        type=Type.COMPLEX,
        multi_valued=True,
        description=description,
        mutability=mutability,
        sub_attributes=(
            Attribute(
                "value",
                type=value_type,
                case_exact=value_case_exact,
                mutability=mutability,
                reference_types=reference_types,
            ),
            Attribute("display", mutability=mutability),
            Attribute("type", canonical_values=types, mutability=mutability),
            Attribute("primary", type=Type.BOOLEAN, mutability=mutability),
        ),
    )


USER_SCHEMA_ID = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA_ID = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER_SCHEMA_ID = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

USER_SCHEMA = Schema(
    id=USER_SCHEMA_ID,
    name="User",
    description="User Account",
    attributes=(
        Attribute(
            "userName",
            description="Unique identifier for the User, used to authenticate.",
            required=True,
            uniqueness=Uniqueness.SERVER,
        ),
        Attribute(
            "name",
            type=Type.COMPLEX,
            description="The components of the user's real name.",
            sub_attributes=(
                Attribute("formatted"),
                Attribute("familyName"),
                Attribute("givenName"),
                Attribute("middleName"),
                Attribute("honorificPrefix"),
                Attribute("honorificSuffix"),
            ),
        ),
        Attribute("displayName", description="The name of the User, suitable for display."),
        Attribute("nickName", description="The casual way to address the user."),
        Attribute(
            "profileUrl",
            type=Type.REFERENCE,
            reference_types=("external",),
            description="A fully qualified URL pointing to a page representing the User.",
        ),
        Attribute("title", description="The user's title, such as 'Vice President'."),
        Attribute("userType", description="Relationship between organisation and user."),
        Attribute("preferredLanguage", description="Preferred written or spoken language."),
        Attribute("locale", description="Default location for localisation."),
        Attribute("timezone", description="Time zone in IANA format."),
        Attribute("active", type=Type.BOOLEAN, description="The User's administrative status."),
        Attribute(
            "password",
            description="The User's cleartext password, write-only.",
            mutability=Mutability.WRITE_ONLY,
            returned=Returned.NEVER,
        ),
        _multi("emails", "Email addresses for the user.", ("work", "home", "other")),
        _multi(
            "phoneNumbers",
            "Phone numbers for the User.",
            ("work", "home", "mobile", "fax", "pager", "other"),
        ),
        _multi(
            "ims",
            "Instant messaging addresses for the User.",
            ("aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
        ),
        _multi(
            "photos",
            "URLs of photos of the User.",
            ("photo", "thumbnail"),
            value_type=Type.REFERENCE,
            value_case_exact=True,
            reference_types=("external",),
        ),
        Attribute(
            "addresses",
            type=Type.COMPLEX,
            multi_valued=True,
            description="A physical mailing address for this User.",
            sub_attributes=(
                Attribute("formatted"),
                Attribute("streetAddress"),
                Attribute("locality"),
                Attribute("region"),
                Attribute("postalCode"),
                Attribute("country"),
                Attribute("type", canonical_values=("work", "home", "other")),
                Attribute("primary", type=Type.BOOLEAN),
            ),
        ),
        Attribute(
            "groups",
            type=Type.COMPLEX,
            multi_valued=True,
            description="Groups the user belongs to, directly or indirectly.",
            mutability=Mutability.READ_ONLY,
            sub_attributes=(
                Attribute("value", mutability=Mutability.READ_ONLY),
                Attribute(
                    "$ref",
                    type=Type.REFERENCE,
                    reference_types=("User", "Group"),
                    mutability=Mutability.READ_ONLY,
                ),
                Attribute("display", mutability=Mutability.READ_ONLY),
                Attribute(
                    "type",
                    canonical_values=("direct", "indirect"),
                    mutability=Mutability.READ_ONLY,
                ),
            ),
        ),
        _multi("entitlements", "Entitlements for the User."),
        _multi("roles", "Roles for the User."),
        _multi(
            "x509Certificates",
            "DER-encoded X.509 certificates for the User.",
            value_type=Type.BINARY,
            value_case_exact=True,
        ),
    ),
)

ENTERPRISE_USER_SCHEMA = Schema(
    id=ENTERPRISE_USER_SCHEMA_ID,
    name="EnterpriseUser",
    description="Enterprise User",
    attributes=(
        Attribute("employeeNumber", description="Identifier assigned by the organisation."),
        Attribute("costCenter", description="Name of a cost center."),
        Attribute("organization", description="Name of an organisation."),
        Attribute("division", description="Name of a division."),
        Attribute("department", description="Name of a department."),
        Attribute(
            "manager",
            type=Type.COMPLEX,
            description="The User's manager.",
            sub_attributes=(
                Attribute("value", description="The id of the manager's User resource."),
                Attribute(
                    "$ref",
                    type=Type.REFERENCE,
                    reference_types=("User",),
                    description="The URI of the manager's User resource.",
                ),
                Attribute(
                    "displayName",
                    mutability=Mutability.READ_ONLY,
                    description="The displayName of the manager.",
                ),
            ),
        ),
    ),
)

GROUP_SCHEMA = Schema(
    id=GROUP_SCHEMA_ID,
    name="Group",
    description="Group",
    attributes=(
        Attribute(
            "displayName",
            description="A human-readable name for the Group.",
            required=True,
        ),
        Attribute(
            "members",
            type=Type.COMPLEX,
            multi_valued=True,
            description="A list of members of the Group.",
            sub_attributes=(
                Attribute(
                    "value",
                    case_exact=True,
                    mutability=Mutability.IMMUTABLE,
                    description="Identifier of the member.",
                ),
                Attribute(
                    "$ref",
                    type=Type.REFERENCE,
                    reference_types=("User", "Group"),
                    mutability=Mutability.IMMUTABLE,
                    description="The URI of the member resource.",
                ),
                Attribute(
                    "display",
                    mutability=Mutability.READ_ONLY,
                    # RFC 7643 §8.7.1 returns it by default. Here it is returned on request
                    # (`attributes=members.display`): clients compare the members they sent
                    # with those returned, and a server-made display breaks that equality.
                    returned=Returned.REQUEST,
                    description="A human-readable name of the member (on request).",
                ),
                Attribute(
                    "type",
                    canonical_values=("User", "Group"),
                    mutability=Mutability.IMMUTABLE,
                    description="The type of the member.",
                ),
            ),
        ),
    ),
)

USER = ResourceType(
    name="User",
    endpoint="/Users",
    description="User Account",
    schema=USER_SCHEMA,
    extensions=((ENTERPRISE_USER_SCHEMA, False),),
)
GROUP = ResourceType(
    name="Group",
    endpoint="/Groups",
    description="Group",
    schema=GROUP_SCHEMA,
)
RESOURCE_TYPES: tuple[ResourceType, ...] = (USER, GROUP)
SCHEMAS: tuple[Schema, ...] = (USER_SCHEMA, ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA)


@dataclass(frozen=True)
class ResolvedAttribute:
    """A client-written attribute path resolved against a resource type.

    `schema` is the URN that owns the attribute (core or extension), `attribute` the top-level
    definition, `sub` the sub-attribute (or None). Names are canonical.
    """

    schema: str
    attribute: Attribute
    sub: Attribute | None = None

    @property
    def target(self) -> Attribute:
        return self.sub or self.attribute

    @property
    def is_extension(self) -> bool:
        return self.schema not in (USER_SCHEMA_ID, GROUP_SCHEMA_ID)

    @property
    def dotted(self) -> str:
        return self.attribute.name + (f".{self.sub.name}" if self.sub else "")


def resolve(
    resource_type: ResourceType, uri: str | None, attr: str, sub: str | None = None
) -> ResolvedAttribute | None:
    """Resolve `[uri:]attr[.sub]` (names in any case) to canonical definitions, or None.

    Common attributes (id, externalId, meta) resolve under the core schema URN.
    """
    if uri is None:
        schema = resource_type.schema
        top = next((a for a in COMMON_ATTRIBUTES if a.name.lower() == attr.lower()), None)
        top = top or schema.attribute(attr)
    else:
        found = resource_type.schema_for(uri)
        if found is None:
            return None
        schema = found
        top = schema.attribute(attr)
        if top is None and schema is resource_type.schema:
            top = next((a for a in COMMON_ATTRIBUTES if a.name.lower() == attr.lower()), None)
    if top is None:
        return None
    if sub is None:
        return ResolvedAttribute(schema.id, top)
    sub_attr = top.sub(sub)
    if sub_attr is None:
        return None
    return ResolvedAttribute(schema.id, top, sub_attr)
