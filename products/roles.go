package products

import "slices"

// Roles a caller may hold besides the per-product ones (ReadRole,
// WriteRole). Other role names are the configuration's own: row policies
// name them (e.g. "sales-de").
const (
	// RoleAdmin implies every role and is never restricted by a row
	// policy; the dev-mode identity holds it.
	RoleAdmin = "admin"
	// RolePII reads fields holding personal data unmasked, and may filter,
	// sort and group on them.
	RolePII = "pii:read"
	// RoleAudit reads audit logs (auditLog, history, auditEntries) and the
	// read-access audit (piiReads), of the products the caller may read.
	RoleAudit = "audit:read"
	// RoleCatalog reads the catalog (query and downloads), introspection
	// and the federation SDL (_service).
	RoleCatalog = "catalog:read"
)

// ReadRole is the role that reads a product's data: "<product>:read".
func ReadRole(product string) string { return product + ":read" }

// WriteRole is the role that runs a product's mutations: "<product>:write".
func WriteRole(product string) string { return product + ":write" }

// HasRole reports whether the identity holds role. Admin (and the dev
// identity) holds every role.
func (id *Identity) HasRole(role string) bool {
	if id == nil {
		return false
	}
	return id.Dev || slices.Contains(id.Roles, role) || slices.Contains(id.Roles, RoleAdmin)
}

// Admin reports whether the identity is an administrator (or the dev
// identity): it holds every role and no row policy restricts it.
func (id *Identity) Admin() bool {
	return id != nil && (id.Dev || slices.Contains(id.Roles, RoleAdmin))
}
