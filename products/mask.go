package products

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Masked is what a caller without the pii:read role gets in place of a
// string holding personal data. Personal fields of other types (which
// Validate requires to be nullable) are masked as null. "***" rather than
// null for strings: null already means "no value" (a customer without a
// phone), and a masked non-null field must stay non-null.
const Masked = "***"

// Mask returns the masked form of the field's values.
func (f *Field) Mask() any {
	if f.Type == TypeString {
		return Masked
	}
	return nil
}

// PII lists the entity's fields holding personal data.
func (e *Entity) PII() []*Field {
	var out []*Field
	for _, f := range e.Fields {
		if f.PII && !f.Derived {
			out = append(out, f)
		}
	}
	return out
}

// MaskImage masks, in place, the personal fields of a row image (field
// name → value, as audit entries and change events hold it) and returns
// the names of those that held a value (nil when none did).
func MaskImage(e *Entity, img map[string]any) []string {
	var masked []string
	for _, f := range e.Fields {
		if !f.PII || f.Derived {
			continue
		}
		if v, ok := img[f.Name]; ok {
			if v != nil {
				masked = append(masked, f.Name)
			}
			img[f.Name] = f.Mask()
		}
	}
	return masked
}

// PIIPresent returns the names of the entity's personal fields that hold a
// value in the image.
func PIIPresent(e *Entity, img map[string]any) []string {
	var out []string
	for _, f := range e.Fields {
		if f.PII && !f.Derived && img[f.Name] != nil {
			out = append(out, f.Name)
		}
	}
	return out
}

// MaskImageJSON masks the personal fields of a JSON row image (nil stays
// nil) and returns the new text; an image without personal data comes
// back unchanged.
func MaskImageJSON(e *Entity, img *string) (*string, error) {
	if img == nil || len(e.PII()) == 0 {
		return img, nil
	}
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(*img))
	dec.UseNumber() // keep numbers exactly as written
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("mask %s image: %w", e.Name, err)
	}
	if MaskImage(e, m) == nil {
		return img, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("mask %s image: %w", e.Name, err)
	}
	s := string(b)
	return &s, nil
}

// PIIUse returns the path of the first use of a personal field in a where
// filter, an ordering or a grouping of the entity (e.g. "where.or[1].email",
// "orderBy[0].field", "groupBy[0]") and the field, or "" and nil: callers
// without pii:read may not use them (the results would reveal the values).
func PIIUse(e *Entity, where map[string]any, orderBy []map[string]any, groupBy []string) (string, *Field) {
	if path, f := piiInWhere(e, where, "where"); f != nil {
		return path, f
	}
	for i, ob := range orderBy {
		name, _ := Deref(ob["field"]).(string)
		if f := e.bySort(name); f != nil && f.PII {
			return fmt.Sprintf("orderBy[%d].field", i), f
		}
	}
	for i, g := range groupBy {
		if f := e.byGroup(g); f != nil && f.PII {
			return fmt.Sprintf("groupBy[%d]", i), f
		}
	}
	return "", nil
}

func piiInWhere(e *Entity, w map[string]any, path string) (string, *Field) {
	for _, k := range sortedKeys(w) {
		v := w[k]
		if absent(v) {
			continue
		}
		p := path + "." + k
		switch k {
		case "and", "or":
			list, _ := filterList(v, p)
			for i, sub := range list {
				if q, f := piiInWhere(e, sub, fmt.Sprintf("%s[%d]", p, i)); f != nil {
					return q, f
				}
			}
		case "not":
			if sub, ok := v.(map[string]any); ok {
				if q, f := piiInWhere(e, sub, p); f != nil {
					return q, f
				}
			}
		default:
			if f := e.Field(k); f != nil && f.PII {
				return p, f
			}
		}
	}
	return "", nil
}
