package scim

import "strings"

// Schema URNs (RFC 7643 §8.7, RFC 7644 §3.1).
const (
	SchemaUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	SchemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	SchemaSPConfig   = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	SchemaResType    = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	SchemaSchema     = "urn:ietf:params:scim:schemas:core:2.0:Schema"
	msgListResponse  = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	msgError         = "urn:ietf:params:scim:api:messages:2.0:Error"
	msgPatchOp       = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	msgSearch        = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
	msgBulkRequest   = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
	msgBulkResponse  = "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
)

// Attribute characteristics (RFC 7643 §2.2, §7).
const (
	tString    = "string"
	tBoolean   = "boolean"
	tComplex   = "complex"
	tReference = "reference"
	tDateTime  = "dateTime"

	mReadWrite = "readWrite"
	mReadOnly  = "readOnly"
	mWriteOnly = "writeOnly"
	mImmutable = "immutable"

	rDefault = "default"
	rAlways  = "always"
	rNever   = "never"
)

// attrDef describes one attribute of a schema. The same definitions serve
// /Schemas, attribute-name canonicalization (names are case-insensitive,
// RFC 7643 §2.1), PATCH and projection, so they cannot disagree.
type attrDef struct {
	Name        string
	Type        string
	Multi       bool
	Required    bool
	CaseExact   bool
	Mutability  string
	Returned    string
	Uniqueness  string
	Description string
	Canonical   []string
	RefTypes    []string
	Sub         []*attrDef
}

func (a *attrDef) sub(name string) *attrDef { return findAttr(a.Sub, name) }

func findAttr(list []*attrDef, name string) *attrDef {
	for _, a := range list {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

func str(name, desc string) *attrDef {
	return &attrDef{Name: name, Type: tString, Mutability: mReadWrite, Returned: rDefault, Uniqueness: "none", Description: desc}
}

func with(a *attrDef, f func(a *attrDef)) *attrDef { f(a); return a }

// multiValued builds the common shape of emails, phoneNumbers, ... (RFC
// 7643 §2.4): value, display, type, primary.
func multiValued(name, desc string, types ...string) *attrDef {
	return &attrDef{
		Name: name, Type: tComplex, Multi: true, Mutability: mReadWrite, Returned: rDefault, Description: desc,
		Sub: []*attrDef{
			str("value", "The value."),
			str("display", "A human-readable name."),
			with(str("type", "A label indicating the attribute's function."), func(a *attrDef) { a.Canonical = types }),
			{Name: "primary", Type: tBoolean, Mutability: mReadWrite, Returned: rDefault, Description: "Whether this is the primary value."},
		},
	}
}

type schemaDef struct {
	ID          string
	Name        string
	Description string
	Attrs       []*attrDef
}

var metaAttr = &attrDef{Name: "meta", Type: tComplex, Mutability: mReadOnly, Returned: rDefault, Description: "Resource metadata.",
	Sub: []*attrDef{
		{Name: "resourceType", Type: tString, Mutability: mReadOnly, Returned: rDefault, CaseExact: true},
		{Name: "created", Type: tDateTime, Mutability: mReadOnly, Returned: rDefault},
		{Name: "lastModified", Type: tDateTime, Mutability: mReadOnly, Returned: rDefault},
		{Name: "location", Type: tReference, Mutability: mReadOnly, Returned: rDefault, CaseExact: true, RefTypes: []string{"uri"}},
		{Name: "version", Type: tString, Mutability: mReadOnly, Returned: rDefault, CaseExact: true},
	}}

// commonAttrs are on every resource (RFC 7643 §3.1).
var commonAttrs = []*attrDef{
	{Name: "id", Type: tString, CaseExact: true, Mutability: mReadOnly, Returned: rAlways, Uniqueness: "server", Description: "Unique identifier assigned by Gatehouse."},
	{Name: "externalId", Type: tString, CaseExact: true, Mutability: mReadWrite, Returned: rDefault, Description: "Identifier assigned by the provisioning client."},
	metaAttr,
}

var userSchema = &schemaDef{ID: SchemaUser, Name: "User", Description: "User Account", Attrs: []*attrDef{
	with(str("userName", "Unique identifier for the user, used to sign in. Case-insensitive."), func(a *attrDef) { a.Required = true; a.Uniqueness = "server" }),
	{Name: "name", Type: tComplex, Mutability: mReadWrite, Returned: rDefault, Description: "The components of the user's name.", Sub: []*attrDef{
		str("formatted", "The full name."), str("familyName", "Family name."), str("givenName", "Given name."),
		str("middleName", "Middle name."), str("honorificPrefix", "Honorific prefix."), str("honorificSuffix", "Honorific suffix."),
	}},
	str("displayName", "The name of the user, suitable for display."),
	str("nickName", "The casual way to address the user."),
	with(str("profileUrl", "A URI of the user's online profile."), func(a *attrDef) { a.Type = tReference; a.RefTypes = []string{"external"} }),
	str("title", "The user's title."),
	str("userType", "The relationship between the organization and the user."),
	str("preferredLanguage", "Preferred written or spoken language."),
	str("locale", "Default location for localization."),
	str("timezone", "Time zone in IANA format."),
	{Name: "active", Type: tBoolean, Mutability: mReadWrite, Returned: rDefault, Description: "Whether the user may sign in."},
	with(str("password", "Not stored: Gatehouse users sign in through their organization's IdP."), func(a *attrDef) { a.Mutability = mWriteOnly; a.Returned = rNever }),
	multiValued("emails", "Email addresses; the primary (else the first) is the user's email.", "work", "home", "other"),
	multiValued("phoneNumbers", "Phone numbers.", "work", "home", "mobile", "fax", "pager", "other"),
	multiValued("ims", "Instant messaging addresses.", "aim", "gtalk", "icq", "xmpp", "msn", "skype", "qq", "yahoo"),
	multiValued("photos", "URLs of photos.", "photo", "thumbnail"),
	{Name: "addresses", Type: tComplex, Multi: true, Mutability: mReadWrite, Returned: rDefault, Description: "Physical mailing addresses.", Sub: []*attrDef{
		str("formatted", ""), str("streetAddress", ""), str("locality", ""), str("region", ""), str("postalCode", ""), str("country", ""),
		with(str("type", ""), func(a *attrDef) { a.Canonical = []string{"work", "home", "other"} }),
		{Name: "primary", Type: tBoolean, Mutability: mReadWrite, Returned: rDefault},
	}},
	{Name: "groups", Type: tComplex, Multi: true, Mutability: mReadOnly, Returned: rDefault, Description: "Groups the user belongs to through SCIM.", Sub: []*attrDef{
		{Name: "value", Type: tString, Mutability: mReadOnly, Returned: rDefault, CaseExact: true},
		{Name: "$ref", Type: tReference, Mutability: mReadOnly, Returned: rDefault, CaseExact: true, RefTypes: []string{"Group"}},
		{Name: "display", Type: tString, Mutability: mReadOnly, Returned: rDefault},
		{Name: "type", Type: tString, Mutability: mReadOnly, Returned: rDefault, Canonical: []string{"direct", "indirect"}},
	}},
	multiValued("entitlements", "Entitlements."),
	multiValued("roles", "Roles."),
	multiValued("x509Certificates", "Certificates."),
}}

var enterpriseSchema = &schemaDef{ID: SchemaEnterprise, Name: "EnterpriseUser", Description: "Enterprise User", Attrs: []*attrDef{
	str("employeeNumber", "Numeric or alphanumeric identifier assigned to a person."),
	str("costCenter", "Cost center."),
	str("organization", "Organization."),
	str("division", "Division."),
	str("department", "Department."),
	{Name: "manager", Type: tComplex, Mutability: mReadWrite, Returned: rDefault, Description: "The user's manager.", Sub: []*attrDef{
		str("value", "The id of the manager's User resource."),
		{Name: "$ref", Type: tReference, Mutability: mReadWrite, Returned: rDefault, RefTypes: []string{"User"}},
		{Name: "displayName", Type: tString, Mutability: mReadOnly, Returned: rDefault},
	}},
}}

var groupSchema = &schemaDef{ID: SchemaGroup, Name: "Group", Description: "Group", Attrs: []*attrDef{
	with(str("displayName", "Group name, unique in the tenant (case-insensitive)."), func(a *attrDef) { a.Required = true; a.Uniqueness = "server" }),
	{Name: "members", Type: tComplex, Multi: true, Mutability: mReadWrite, Returned: rDefault, Description: "Members managed through SCIM.", Sub: []*attrDef{
		{Name: "value", Type: tString, Mutability: mImmutable, Returned: rDefault, CaseExact: true},
		{Name: "$ref", Type: tReference, Mutability: mImmutable, Returned: rDefault, CaseExact: true, RefTypes: []string{"User"}},
		{Name: "display", Type: tString, Mutability: mReadOnly, Returned: rDefault},
		{Name: "type", Type: tString, Mutability: mImmutable, Returned: rDefault, Canonical: []string{"User"}},
	}},
}}

// resourceType ties an endpoint to its schemas (RFC 7643 §6).
type resourceType struct {
	Name       string
	Endpoint   string
	Schema     *schemaDef
	Extensions []*schemaDef
}

var (
	userType  = &resourceType{Name: "User", Endpoint: "/Users", Schema: userSchema, Extensions: []*schemaDef{enterpriseSchema}}
	groupType = &resourceType{Name: "Group", Endpoint: "/Groups", Schema: groupSchema}
)

// attr finds a top-level attribute of the resource by URI and name; uri ""
// means the core schema. Common attributes (id, externalId, meta) belong to
// every schema URI of the resource.
func (rt *resourceType) attr(uri, name string) (*attrDef, *schemaDef) {
	if a := findAttr(commonAttrs, name); a != nil && (uri == "" || strings.EqualFold(uri, rt.Schema.ID)) {
		return a, nil
	}
	if uri == "" || strings.EqualFold(uri, rt.Schema.ID) {
		return findAttr(rt.Schema.Attrs, name), nil
	}
	if ext := rt.extension(uri); ext != nil {
		return findAttr(ext.Attrs, name), ext
	}
	return nil, nil
}

func (rt *resourceType) extension(uri string) *schemaDef {
	for _, e := range rt.Extensions {
		if strings.EqualFold(e.ID, uri) {
			return e
		}
	}
	return nil
}
