package products

import (
	"fmt"
	"strings"
)

// Enum is a GraphQL enum declared by a data product: its values are stored
// as text, and its value descriptions end up in the generated SDL. Products
// declare each enum once, in Go, and list it in their Product.
type Enum struct {
	Name        string // GraphQL enum type, e.g. "OrderStatus"
	Description string
	Values      []EnumValue
}

// EnumValue is one value of an Enum.
type EnumValue struct {
	Name        string // e.g. "PLACED"
	Description string
}

// Names lists the enum's values in declaration order.
func (e *Enum) Names() []string {
	out := make([]string, len(e.Values))
	for i, v := range e.Values {
		out[i] = v.Name
	}
	return out
}

// Has tells whether v is one of the enum's values.
func (e *Enum) Has(v string) bool {
	for _, x := range e.Values {
		if x.Name == v {
			return true
		}
	}
	return false
}

// Check returns a BAD_USER_INPUT error naming field unless v is one of the
// enum's values.
func (e *Enum) Check(field, v string) error {
	if e.Has(v) {
		return nil
	}
	return Invalid(field, "%q is not one of %s", v, strings.Join(e.Names(), ", "))
}

func (e *Enum) validate() error {
	if !isTypeName(e.Name) {
		return fmt.Errorf("enum %q: the name must be a GraphQL type name such as OrderStatus", e.Name)
	}
	if e.Description == "" {
		return fmt.Errorf("enum %s: needs a description", e.Name)
	}
	if len(e.Values) == 0 {
		return fmt.Errorf("enum %s: needs at least one value", e.Name)
	}
	seen := map[string]bool{}
	for _, v := range e.Values {
		if !isEnumValue(v.Name) {
			return fmt.Errorf("enum %s: value %q must be UPPER_SNAKE_CASE", e.Name, v.Name)
		}
		if seen[v.Name] {
			return fmt.Errorf("enum %s: value %s is given twice", e.Name, v.Name)
		}
		seen[v.Name] = true
		if v.Description == "" {
			return fmt.Errorf("enum %s: value %s needs a description", e.Name, v.Name)
		}
	}
	return nil
}

func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func isEnumValue(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
