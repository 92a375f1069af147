package products

import (
	"math"
	"net/mail"
	"reflect"
	"regexp"
	"strings"
	"unicode/utf8"
)

// storable rejects what no store keeps in a text column: invalid UTF-8
// and NUL characters (PostgreSQL refuses both in text; SQLite would fail
// with an internal error or cut the value short).
func storable(field, v string) error {
	if !utf8.ValidString(v) {
		return Invalid(field, "must be valid UTF-8")
	}
	if strings.IndexByte(v, 0) >= 0 {
		return Invalid(field, "must not contain NUL characters (U+0000)")
	}
	return nil
}

// Text checks that a string field is storable text (valid UTF-8, no NUL
// characters) with between min and max characters after trimming, and
// returns the trimmed value.
func Text(field, v string, min, max int) (string, error) {
	if err := storable(field, v); err != nil {
		return "", err
	}
	v = strings.TrimSpace(v)
	n := utf8.RuneCountInString(v)
	if n < min {
		if min == 1 {
			return "", Invalid(field, "must not be empty")
		}
		return "", Invalid(field, "must have at least %d characters", min)
	}
	if n > max {
		return "", Invalid(field, "must have at most %d characters", max)
	}
	return v, nil
}

// Email checks an e-mail address and returns it trimmed and lower-cased.
func Email(field, v string) (string, error) {
	if err := storable(field, v); err != nil {
		return "", err
	}
	v = strings.ToLower(strings.TrimSpace(v))
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || !strings.Contains(v[strings.IndexByte(v, '@'):], ".") || len(v) > 254 {
		return "", Invalid(field, "%q is not an e-mail address", v)
	}
	return v, nil
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// Phone checks a phone number in E.164 form (+ and 7 to 15 digits).
func Phone(field, v string) (string, error) {
	v = strings.ReplaceAll(strings.TrimSpace(v), " ", "")
	if !e164.MatchString(v) {
		return "", Invalid(field, "%q is not a phone number in E.164 form, e.g. +4930123456", v)
	}
	return v, nil
}

var alpha2 = regexp.MustCompile(`^[A-Z]{2}$`)

// Country checks an ISO 3166-1 alpha-2 code.
func Country(field, v string) (string, error) {
	if !alpha2.MatchString(v) {
		return "", Invalid(field, "%q is not an ISO 3166-1 alpha-2 country code, e.g. DE", v)
	}
	return v, nil
}

var iso4217 = regexp.MustCompile(`^[A-Z]{3}$`)

// Currency checks an ISO 4217 code.
func Currency(field, v string) (string, error) {
	if !iso4217.MatchString(v) {
		return "", Invalid(field, "%q is not an ISO 4217 currency code, e.g. EUR", v)
	}
	return v, nil
}

// Range checks that a number is finite and within [min, max].
func Range(field string, v, min, max float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < min || v > max {
		return Invalid(field, "must be between %g and %g", min, max)
	}
	return nil
}

// OneOf checks that v is one of the allowed values.
func OneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return Invalid(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// Deref returns what a pointer points to (nil for a nil pointer) and any
// other value unchanged. GraphQL inputs decoded into maps carry optional
// scalars as pointers.
func Deref(v any) any {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	if !rv.IsValid() {
		return nil
	}
	return rv.Interface()
}
