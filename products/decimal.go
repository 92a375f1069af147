package products

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// MoneyPlaces is the scale of money: amounts are whole numbers of cents
// (minor units), stored as BIGINT on every backend.
const MoneyPlaces = 2

// AveragePlaces is the number of places averages are rounded to (half to
// even) from their exact quotient.
const AveragePlaces = 4

// maxInputDigits bounds the magnitude of decimal inputs: at most 13
// digits before the point, so that every accepted value also survives an
// inline GraphQL Float literal (15 significant digits) exactly.
const maxInputDigits = 13

// Decimal is an exact decimal number: an int64 count of units of
// 10^-Places(). Money is a Decimal with MoneyPlaces places (a count of
// cents); aggregates carry other scales (0 for sums of integers,
// AveragePlaces for averages). No operation on a Decimal uses floating
// point.
//
// The zero value is 0.00 (money scale), so money values compare with ==.
// It is stored as its cents (driver.Valuer, sql.Scanner), written to JSON
// as a string ("313.61", like Debezium's decimal.handling.mode=string) and
// to GraphQL as a bare decimal literal (313.61).
type Decimal struct {
	units int64
	xp    int8 // places - MoneyPlaces
}

// Cents returns the money amount of n cents.
func Cents(n int64) Decimal { return Decimal{units: n} }

// NewDecimal returns units × 10^-places.
func NewDecimal(units int64, places int) Decimal {
	return Decimal{units: units, xp: int8(places - MoneyPlaces)}
}

// Units returns the value's integer count of 10^-Places().
func (d Decimal) Units() int64 { return d.units }

// Places returns the number of digits after the decimal point.
func (d Decimal) Places() int { return int(d.xp) + MoneyPlaces }

// Cents returns the value as a whole number of cents; ok is false when it
// has a fraction of a cent or does not fit.
func (d Decimal) Cents() (n int64, ok bool) {
	r, ok := d.rescale(MoneyPlaces)
	return r.units, ok
}

// rescale returns d with the given places; ok is false when that would lose
// digits or overflow.
func (d Decimal) rescale(places int) (Decimal, bool) {
	u := d.units
	for p := d.Places(); p < places; p++ {
		if u > math.MaxInt64/10 || u < math.MinInt64/10 {
			return Decimal{}, false
		}
		u *= 10
	}
	for p := d.Places(); p > places; p-- {
		if u%10 != 0 {
			return Decimal{}, false
		}
		u /= 10
	}
	return NewDecimal(u, places), true
}

func (d Decimal) big() *big.Int { return big.NewInt(d.units) }

// Cmp compares exactly: -1 if d < o, 0 if equal, +1 if d > o.
func (d Decimal) Cmp(o Decimal) int {
	if d.xp == o.xp {
		return cmpInt(d.units, o.units)
	}
	a, b := d.big(), o.big()
	if d.Places() < o.Places() {
		a.Mul(a, pow10(o.Places()-d.Places()))
	} else {
		b.Mul(b, pow10(d.Places()-o.Places()))
	}
	return a.Cmp(b)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Add returns d + o at the larger scale of the two, or an error on overflow.
func (d Decimal) Add(o Decimal) (Decimal, error) {
	places := max(d.Places(), o.Places())
	a, ok1 := d.rescale(places)
	b, ok2 := o.rescale(places)
	s := a.units + b.units
	if !ok1 || !ok2 || (b.units > 0 && s < a.units) || (b.units < 0 && s > a.units) {
		return Decimal{}, fmt.Errorf("decimal overflow adding %s and %s", d, o)
	}
	return NewDecimal(s, places), nil
}

// Mul returns d × n, or an error on overflow.
func (d Decimal) Mul(n int64) (Decimal, error) {
	p := new(big.Int).Mul(d.big(), big.NewInt(n))
	if !p.IsInt64() {
		return Decimal{}, fmt.Errorf("decimal overflow multiplying %s by %d", d, n)
	}
	return NewDecimal(p.Int64(), d.Places()), nil
}

// String writes the value with exactly Places() digits after the point,
// e.g. "-12.30", "150000", "0.5000".
func (d Decimal) String() string {
	places := d.Places()
	s := strconv.FormatInt(d.units, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	if places > 0 {
		if len(s) <= places {
			s = strings.Repeat("0", places-len(s)+1) + s
		}
		s = s[:len(s)-places] + "." + s[len(s)-places:]
	} else {
		s += strings.Repeat("0", -places)
	}
	if neg {
		s = "-" + s
	}
	return s
}

func pow10(n int) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// ParseDecimal reads a decimal literal exactly: an optional sign, digits
// with an optional fraction, and an optional exponent (as JSON numbers
// have), e.g. "12.34", "-0.5", "1e3", "1.5E-1". It keeps the places the
// text has (after applying the exponent); it fails on anything else,
// including NaN and infinities, and on values outside int64 units.
func ParseDecimal(s string) (Decimal, error) {
	bad := func() (Decimal, error) { return Decimal{}, fmt.Errorf("%q is not a decimal number", s) }
	t := s
	exp := 0
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		e, err := strconv.Atoi(t[i+1:])
		if err != nil || e > 40 || e < -40 {
			return bad()
		}
		exp, t = e, t[:i]
	}
	neg := false
	if t != "" && (t[0] == '-' || t[0] == '+') {
		neg, t = t[0] == '-', t[1:]
	}
	intPart, frac, _ := strings.Cut(t, ".")
	if intPart == "" && frac == "" {
		return bad()
	}
	for _, part := range []string{intPart, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return bad()
			}
		}
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	places := len(frac) - exp
	if places < 0 {
		digits += strings.Repeat("0", -places)
		places = 0
	}
	if digits == "" {
		digits = "0"
	}
	if places > 40 {
		return bad()
	}
	u, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return Decimal{}, fmt.Errorf("%q is out of range", s)
	}
	if neg {
		u = -u
	}
	return NewDecimal(u, places), nil
}

// Money returns d as an amount of money (exactly MoneyPlaces places), or
// a BAD_USER_INPUT error naming field when it has more places than cents,
// or more than 13 digits before the point.
func (d Decimal) Money(field string) (Decimal, error) {
	c, ok := d.Cents()
	if !ok {
		return Decimal{}, Invalid(field, "%s has more than %d digits after the decimal point", d, MoneyPlaces)
	}
	if lim := int64(math.Pow10(maxInputDigits + MoneyPlaces)); c >= lim || c <= -lim {
		return Decimal{}, Invalid(field, "%s is out of range (at most %d digits before the decimal point)", d, maxInputDigits)
	}
	return Cents(c), nil
}

// DecimalInput reads a money amount given as a GraphQL or JSON value: a
// string ("12.34"), a json.Number, an integer, or a float64 (an inline
// GraphQL Float literal, read back through its shortest exact text, never
// through float arithmetic). Errors are BAD_USER_INPUT naming field.
func DecimalInput(field string, v any) (Decimal, error) {
	var text string
	switch v := Deref(v).(type) {
	case Decimal:
		return v.Money(field)
	case string:
		text = strings.TrimSpace(v)
	case json.Number:
		text = string(v)
	case int:
		text = strconv.Itoa(v)
	case int64:
		text = strconv.FormatInt(v, 10)
	case int32:
		text = strconv.FormatInt(int64(v), 10)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Decimal{}, Invalid(field, "must be a finite decimal number")
		}
		text = strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return Decimal{}, Invalid(field, "must be a decimal number such as 12.34 (a number or a string)")
	}
	d, err := ParseDecimal(text)
	if err != nil {
		return Decimal{}, Invalid(field, "%q is not a decimal number such as 12.34", text)
	}
	return d.Money(field)
}

// MarshalGQL writes the exact decimal literal (a JSON number).
func (d Decimal) MarshalGQL(w io.Writer) { io.WriteString(w, d.String()) }

// UnmarshalGQL reads a money amount (see DecimalInput).
func (d *Decimal) UnmarshalGQL(v any) error {
	m, err := DecimalInput("", v)
	if err != nil {
		return err
	}
	*d = m
	return nil
}

// MarshalJSON writes the exact decimal as a JSON string, "313.61".
func (d Decimal) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads a decimal given as a JSON string or number (images
// written before money was exact hold numbers), exactly. A value with
// fewer places than money gets money's places.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := ParseDecimal(s)
	if err != nil {
		return err
	}
	if v.Places() < MoneyPlaces {
		var ok bool
		if v, ok = v.rescale(MoneyPlaces); !ok {
			return fmt.Errorf("%s is out of range", s)
		}
	} else if c, ok := v.Cents(); ok {
		v = Cents(c)
	}
	*d = v
	return nil
}

// Value stores the amount as its cents.
func (d Decimal) Value() (driver.Value, error) {
	c, ok := d.Cents()
	if !ok {
		return nil, fmt.Errorf("%s is not a whole number of cents", d)
	}
	return c, nil
}

// Scan reads cents stored as an integer.
func (d *Decimal) Scan(src any) error {
	switch v := src.(type) {
	case int64:
		*d = Cents(v)
		return nil
	case float64:
		// REAL affinity (SQLite) may hand an integral value back as a float.
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			*d = Cents(int64(v))
			return nil
		}
	case []byte:
		return d.Scan(string(v))
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil {
			*d = Cents(n)
			return nil
		}
	}
	return fmt.Errorf("cannot read %T %v as cents", src, src)
}

// quotient returns num × 10^-numPlaces / den rounded half to even to places.
func quotient(num *big.Int, numPlaces int, den int64, places int) (Decimal, error) {
	n := new(big.Int).Set(num)
	d := big.NewInt(den)
	if shift := places - numPlaces; shift >= 0 {
		n.Mul(n, pow10(shift))
	} else {
		d.Mul(d, pow10(-shift))
	}
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	// Round half to even: compare 2|r| with |d|.
	r2 := new(big.Int).Abs(r)
	r2.Lsh(r2, 1)
	if c := r2.Cmp(new(big.Int).Abs(d)); c > 0 || c == 0 && q.Bit(0) == 1 {
		if n.Sign()*d.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	if !q.IsInt64() {
		return Decimal{}, fmt.Errorf("decimal overflow")
	}
	return NewDecimal(q.Int64(), places), nil
}

// Average returns sum / n rounded half to even to AveragePlaces places,
// computed exactly.
func Average(sum Decimal, n int64) (Decimal, error) {
	return quotient(sum.big(), sum.Places(), n, AveragePlaces)
}
