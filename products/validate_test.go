package products

import (
	"math"
	"strings"
	"testing"
)

func TestValidators(t *testing.T) {
	type check func(string) (string, error)
	ok := func(name string, f check, in, want string) {
		t.Helper()
		got, err := f(in)
		if err != nil || got != want {
			t.Errorf("%s(%q) = %q, %v; want %q", name, in, got, err, want)
		}
	}
	bad := func(name string, f check, in string) {
		t.Helper()
		_, err := f(in)
		var e *Error
		if ErrorCode(err) != BadUserInput {
			t.Errorf("%s(%q): %v, want BAD_USER_INPUT", name, in, err)
		} else if e, _ = err.(*Error); e.Field != "f" {
			t.Errorf("%s(%q): field %q", name, in, e.Field)
		}
	}
	email := func(v string) (string, error) { return Email("f", v) }
	ok("Email", email, " Ada.Lovelace@Example.COM ", "ada.lovelace@example.com")
	ok("Email", email, "a+b@mail.example.org", "a+b@mail.example.org")
	for _, v := range []string{"", "ada", "ada@", "@example.com", "ada@localhost", "Ada <ada@example.com>", "a b@example.com", strings.Repeat("a", 250) + "@x.io"} {
		bad("Email", email, v)
	}
	phone := func(v string) (string, error) { return Phone("f", v) }
	ok("Phone", phone, " +49 30 1234567 ", "+49301234567")
	ok("Phone", phone, "+1234567", "+1234567")
	for _, v := range []string{"", "0301234567", "+0301234567", "+123456", "+1234567890123456", "+49-30-123456", "+49 30 CALL"} {
		bad("Phone", phone, v)
	}
	country := func(v string) (string, error) { return Country("f", v) }
	ok("Country", country, "DE", "DE")
	for _, v := range []string{"", "de", "DEU", "D", " DE"} {
		bad("Country", country, v)
	}
	currency := func(v string) (string, error) { return Currency("f", v) }
	ok("Currency", currency, "EUR", "EUR")
	for _, v := range []string{"", "eur", "EURO", "E1R"} {
		bad("Currency", currency, v)
	}
	text := func(v string) (string, error) { return Text("f", v, 1, 5) }
	ok("Text", text, "  abc  ", "abc")
	ok("Text", text, "ééééé", "ééééé")
	for _, v := range []string{"", "   ", "abcdef", "éééééé", "a\x00b", "\x00", "a\xffb"} {
		bad("Text", text, v)
	}
	bad("Email", email, "ada\x00@example.com")
	bad("Email", email, "ada\xff@example.com")
	for _, v := range []float64{-0.01, 1e9 + 1, math.NaN(), math.Inf(1), math.Inf(-1)} {
		if ErrorCode(Range("f", v, 0, 1e9)) != BadUserInput {
			t.Errorf("Range(%v) accepted", v)
		}
	}
	for _, v := range []float64{0, 1e9, 12.5} {
		if err := Range("f", v, 0, 1e9); err != nil {
			t.Errorf("Range(%v): %v", v, err)
		}
	}
	if err := OneOf("f", "B", "A", "B"); err != nil {
		t.Error(err)
	}
	if ErrorCode(OneOf("f", "b", "A", "B")) != BadUserInput {
		t.Error("OneOf accepted a lower-case value")
	}
}
