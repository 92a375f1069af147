package products

import (
	"encoding/json"
	"math"
	"math/big"
	"testing"
)

func TestDecimalParseAndString(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "12.34": "12.34", "-0.5": "-0.5", "1e3": "1000", "1.5E-1": "0.15", "007.10": "7.10",
		"+3": "3", ".5": "0.5", "-12.300": "-12.300", "1.23e1": "12.3", "9223372036854775807": "9223372036854775807",
	} {
		d, err := ParseDecimal(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDecimal(%q) = %s, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"", "-", ".", "1.2.3", "1,5", "NaN", "Inf", "-Infinity", "0x10", "1e", "1e999", "12a", " 1", "9223372036854775808"} {
		if d, err := ParseDecimal(in); err == nil {
			t.Errorf("ParseDecimal(%q) = %s, want an error", in, d)
		}
	}
}

func TestDecimalInputForms(t *testing.T) {
	for _, tc := range []struct {
		in    any
		cents int64
	}{
		{"12.34", 1234}, {json.Number("12.34"), 1234}, {12.34, 1234}, {int64(5), 500}, {7, 700},
		{"1.500", 150}, {json.Number("1e2"), 10000}, {-0.01, -1}, {"9999999999999.99", 999999999999999}, {Cents(42), 42},
	} {
		d, err := DecimalInput("f", tc.in)
		if err != nil || d != Cents(tc.cents) {
			t.Errorf("DecimalInput(%#v) = %v, %v; want %d cents", tc.in, d, err, tc.cents)
		}
	}
	tenth := 0.1
	for _, in := range []any{"1.005", 1.005, tenth + 0.2, math.NaN(), math.Inf(1), "NaN", "10000000000000", json.Number("1e13"), true, nil, []int{1}, "1,5"} {
		if d, err := DecimalInput("f", in); ErrorCode(err) != BadUserInput {
			t.Errorf("DecimalInput(%#v) = %v, %v; want BAD_USER_INPUT", in, d, err)
		}
	}
}

func TestDecimalArithmetic(t *testing.T) {
	a, _ := Cents(1999).Mul(3)
	b, _ := a.Add(Cents(1))
	if a != Cents(5997) || b != Cents(5998) || b.String() != "59.98" {
		t.Errorf("19.99×3 = %s, +0.01 = %s", a, b)
	}
	if _, err := Cents(math.MaxInt64).Add(Cents(1)); err == nil {
		t.Error("overflow not reported")
	}
	if _, err := Cents(math.MaxInt64 / 2).Mul(3); err == nil {
		t.Error("overflow not reported")
	}
	if NewDecimal(5, 0).Cmp(Cents(500)) != 0 || NewDecimal(12345, 4).Cmp(Cents(123)) <= 0 || Cents(-1).Cmp(NewDecimal(0, 4)) >= 0 {
		t.Error("Cmp across scales")
	}
	mixed, _ := NewDecimal(1, 0).Add(Cents(5))
	if mixed.String() != "1.05" {
		t.Errorf("1 + 0.05 = %s", mixed)
	}
}

// TestAverage: the exact quotient rounded half to even to 4 places,
// checked against big.Rat.
func TestAverage(t *testing.T) {
	for _, tc := range []struct {
		sum  Decimal
		n    int64
		want string
	}{
		{Cents(100), 3, "0.3333"}, {Cents(200), 3, "0.6667"}, {Cents(-200), 3, "-0.6667"},
		{Cents(1), 8, "0.0012"}, // 0.00125 → even
		{Cents(3), 8, "0.0038"}, // 0.00375 → even
		{Cents(-1), 8, "-0.0012"}, {Cents(5), 4, "0.0125"}, {NewDecimal(7, 0), 2, "3.5000"},
		{Cents(1521862), 1, "15218.6200"},
	} {
		got, err := Average(tc.sum, tc.n)
		if err != nil || got.String() != tc.want {
			t.Errorf("Average(%s, %d) = %s, %v; want %s", tc.sum, tc.n, got, err, tc.want)
		}
	}
	// Against big.Rat for many quotients.
	for s := int64(-1000); s <= 1000; s += 7 {
		for n := int64(1); n <= 40; n++ {
			got, _ := Average(Cents(s), n)
			r := big.NewRat(s, 100*n)
			r.Mul(r, big.NewRat(10000, 1))
			q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
			twice := new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2))
			if c := twice.Cmp(r.Denom()); c > 0 || c == 0 && q.Bit(0) == 1 {
				q.Add(q, big.NewInt(int64(m.Sign())))
			}
			if got != NewDecimal(q.Int64(), 4) {
				t.Fatalf("Average(%s, %d) = %s, want %s", Cents(s), n, got, NewDecimal(q.Int64(), 4))
			}
		}
	}
}

func TestDecimalJSONAndSQL(t *testing.T) {
	b, _ := json.Marshal(struct{ A, B Decimal }{Cents(31361), Cents(-5)})
	if string(b) != `{"A":"313.61","B":"-0.05"}` {
		t.Errorf("JSON %s", b)
	}
	// Images written before money was exact hold numbers.
	for in, want := range map[string]Decimal{`"313.61"`: Cents(31361), `313.61`: Cents(31361), `313.6`: Cents(31360), `5`: Cents(500), `"0.0125"`: NewDecimal(125, 4)} {
		var d Decimal
		if err := json.Unmarshal([]byte(in), &d); err != nil || d != want {
			t.Errorf("unmarshal %s = %v, %v; want %v", in, d, err, want)
		}
	}
	var d Decimal
	if err := json.Unmarshal([]byte(`"x"`), &d); err == nil {
		t.Error("unmarshal of x")
	}
	if v, err := Cents(31361).Value(); err != nil || v != int64(31361) {
		t.Errorf("Value %v %v", v, err)
	}
	if _, err := NewDecimal(1, 3).Value(); err == nil {
		t.Error("a fraction of a cent was stored")
	}
	for _, src := range []any{int64(31361), float64(31361), []byte("31361"), "31361"} {
		var d Decimal
		if err := d.Scan(src); err != nil || d != Cents(31361) {
			t.Errorf("Scan(%#v) = %v, %v", src, d, err)
		}
	}
	for _, src := range []any{313.61, nil, "x", true} {
		var d Decimal
		if err := d.Scan(src); err == nil {
			t.Errorf("Scan(%#v) accepted", src)
		}
	}
}
