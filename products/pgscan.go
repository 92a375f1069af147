package products

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/dialect/sqltype"
	"github.com/uptrace/bun/schema"
)

// Reads of model rows on PostgreSQL skip bun's reflection-based scanning
// and database/sql's per-value conversion: bun still writes the statement
// (selectRows), and the statement still goes through bun's QueryContext,
// so every query hook sees it with its final text, and through
// database/sql, which picks the session and retries a read on a broken
// one. Only on the session itself (readRetryConn.QueryContext, which finds
// a *pgScan in the context) is it run with pgx's own protocol calls, and
// the text-format values of its rows are decoded straight into the
// fields, through a plan per column made from bun's table metadata. A
// field whose kind the plan does not know is given, with the value
// database/sql would have seen, to bun's own scanner of the field, so
// every field reads exactly as bun would read it (pgscan_test.go compares
// both on every kind the models use). Other databases (SQLite) and models
// with scan hooks keep bun's scanning.

// selectRows runs q, a SELECT of T's table made with Model(dst), and
// stores its rows in *dst, as q.Scan(ctx) does. q must not load relations
// (Relation) nor rely on bun.WithComment: the fast path runs q's own
// statement only, as written by AppendQuery.
func selectRows[T any](ctx context.Context, db bun.IDB, q *bun.SelectQuery, dst *[]*T) error {
	return selectRowsWith(ctx, db, q, dst, nil)
}

// selectRowsWith is selectRows for a statement with parameters: q's text
// names them $1…$n, and params (from readParams, never nil then) holds
// their values. The session runs such a statement prepared (see
// readRetryConn.scan); query hooks see it with its $n.
func selectRowsWith[T any](ctx context.Context, db bun.IDB, q *bun.SelectQuery, dst *[]*T, params *readParams) error {
	m := rowPlanOf[T](db)
	if m == nil || !isFastPG(q.DB()) || bunScans.Load() {
		if params != nil {
			return fmt.Errorf("a read with parameters on a store that does not prepare reads")
		}
		return q.Scan(ctx)
	}
	query, err := q.AppendQuery(q.DB().QueryGen(), nil)
	if err != nil {
		return err
	}
	var out []*T
	sink := &pgScan{run: func(ctx context.Context, c *readRetryConn, query string) error {
		out = nil // a retry on another session starts over
		pc := c.Conn.Conn()
		tm := pc.TypeMap()
		newReader := func(fds []pgconn.FieldDescription) (*rowReader[T], error) {
			return newRowReader[T](m, tm, fds)
		}
		if params != nil {
			return readPrepared(ctx, c, textHash(query), query, params.values, newReader, &out)
		}
		if h := textHash(query); c.repeated(h, query) {
			return readPrepared(ctx, c, h, query, nil, newReader, &out)
		}
		return readRows(ctx, pc.PgConn(), query, newReader, &out)
	}}
	rows, err := db.QueryContext(context.WithValue(ctx, pgScanKey{}, sink), "?", bun.Safe(query))
	if err != nil {
		return err
	}
	if !sink.ran {
		// The session was not one of readRetryConn's: bun reads what it
		// returned.
		defer rows.Close()
		return q.DB().ScanRows(ctx, rows, dst)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	*dst = out
	return nil
}

// selectRow is selectRows for a query of one row (sql.ErrNoRows when
// there is none), as q.Model(row).Scan(ctx) does.
func selectRow[T any](ctx context.Context, db bun.IDB, q *bun.SelectQuery, params *readParams) (*T, error) {
	if params == nil && (rowPlanOf[T](db) == nil || !isFastPG(q.DB()) || bunScans.Load()) {
		row := new(T)
		return row, q.Model(row).Scan(ctx)
	}
	var rows []*T
	if err := selectRowsWith(ctx, db, q.Model(&rows), &rows, params); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, sql.ErrNoRows
	}
	return rows[0], nil
}

// bunScans makes every read scan with bun (tests compare both ways).
var bunScans atomic.Bool

// isFastPG tells whether db's sessions are readRetryConn's.
func isFastPG(db *bun.DB) bool {
	_, ok := db.DB.Driver().(*readRetryDriver)
	return ok
}

// readParams are the values of a read's $n parameters, in text format.
type readParams struct{ values [][]byte }

// paramsFor returns an empty readParams when reads of T on db run
// prepared, else nil: the caller then writes its values into the
// statement. A read with parameters is prepared once per session and
// shape, so PostgreSQL parses and plans it once instead of on every
// request; only reads whose text is the same for every request of a
// shape take them (keys as one array, no filter values), so the sessions'
// statements stay few.
//
// Reads in a transaction are not prepared: a prepared statement whose
// table changed since (another instance migrated it) fails once and is
// prepared again, which a transaction cannot survive.
func paramsFor[T any](db bun.IDB, q *bun.SelectQuery) *readParams {
	switch db.(type) {
	case bun.Tx, *bun.Tx, *Tx:
		return nil
	}
	d, ok := q.DB().DB.Driver().(*readRetryDriver)
	if !ok || !d.prepare || rowPlanOf[T](db) == nil || bunScans.Load() {
		return nil
	}
	return &readParams{}
}

// keys adds keys as the next parameter, a bigint[], and returns its
// placeholder.
func (p *readParams) keys(keys []int64) bun.Safe {
	b := make([]byte, 0, 2+len(keys)*8)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, k, 10)
	}
	b = append(b, '}')
	return p.add(b, "bigint[]")
}

// key adds one key as the next parameter, a bigint.
func (p *readParams) key(k int64) bun.Safe {
	return p.add(strconv.AppendInt(nil, k, 10), "bigint")
}

func (p *readParams) add(v []byte, typ string) bun.Safe {
	p.values = append(p.values, v)
	return bun.Safe("$" + strconv.Itoa(len(p.values)) + "::" + typ)
}

// pgScanKey is the context key of the *pgScan of a read.
type pgScanKey struct{}

// pgScan is a read that readRetryConn.QueryContext runs on its session.
type pgScan struct {
	run func(ctx context.Context, c *readRetryConn, query string) error
	ran bool
}

// noRows is what database/sql gets back for a read that pgScan has read.
type noRows struct{}

func (noRows) Columns() []string         { return nil }
func (noRows) Close() error              { return nil }
func (noRows) Next([]driver.Value) error { return io.EOF }

// readRows runs query (one SELECT, simple protocol: text-format values)
// and appends its rows to *out through the reader newReader makes for its
// columns.
func readRows[T any](ctx context.Context, pc *pgconn.PgConn, query string,
	newReader func([]pgconn.FieldDescription) (*rowReader[T], error), out *[]*T) error {
	mrr := pc.Exec(ctx, query)
	var err error
	first := true
	for mrr.NextResult() {
		rr := mrr.ResultReader()
		if first {
			first = false
			err = readResult(rr, newReader, out)
		} else if _, cerr := rr.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := mrr.Close(); err == nil {
		err = cerr
	}
	return err
}

// readResult appends the rows of rr to *out and closes rr.
func readResult[T any](rr *pgconn.ResultReader, newReader func([]pgconn.FieldDescription) (*rowReader[T], error), out *[]*T) error {
	r, err := newReader(rr.FieldDescriptions())
	for err == nil && rr.NextRow() {
		var row *T
		row, err = r.read(rr.Values())
		*out = append(*out, row)
	}
	if _, cerr := rr.Close(); err == nil {
		err = cerr
	}
	return err
}

// maxPrepared bounds the statements a session keeps prepared; past it the
// session forgets them all and prepares again what it runs.
const maxPrepared = 256

// readPrepared runs query, one SELECT with the parameters params (text
// format), as a statement prepared on the session (once: the session
// remembers its statements by h, the hash of their text, and names them
// after it) and appends its rows to *out. A statement whose plan no longer fits its table (the table
// changed since it was prepared) is prepared again, once.
func readPrepared[T any](ctx context.Context, c *readRetryConn, h uint64, query string, params [][]byte,
	newReader func([]pgconn.FieldDescription) (*rowReader[T], error), out *[]*T) error {
	pc := c.Conn.Conn().PgConn()
	for attempt := 0; ; attempt++ {
		sd := c.prepared[h]
		if sd == nil || sd.SQL != query { // not prepared, or another text with the same hash
			if len(c.prepared) >= maxPrepared {
				if _, err := pc.Exec(ctx, "DEALLOCATE ALL").ReadAll(); err != nil {
					return err
				}
				clear(c.prepared)
			}
			var err error
			if sd, err = prepare(ctx, pc, "mg_"+strconv.FormatUint(h, 36), query); err != nil {
				return err
			}
			c.prepared[h] = sd
		}
		err := readResult(pc.ExecStatement(ctx, sd, params, nil, nil), newReader, out)
		if err == nil || attempt > 0 || !stalePlan(err) || pc.TxStatus() != 'I' {
			return err
		}
		// Prepared again (over the stale one) on the next turn.
		*out = (*out)[:0]
		delete(c.prepared, h)
	}
}

// prepare prepares query on the session as name. A statement of that name
// the server has already (the session forgot it: a stale plan, another
// text with the same hash, a Prepare whose context ended while the server
// prepared it) is replaced.
func prepare(ctx context.Context, pc *pgconn.PgConn, name, query string) (*pgconn.StatementDescription, error) {
	sd, err := pc.Prepare(ctx, name, query, nil)
	if isCode(err, "42P05") { // prepared statement already exists
		if err = pc.Deallocate(ctx, name); err == nil {
			sd, err = pc.Prepare(ctx, name, query, nil)
		}
	}
	return sd, err
}

// textHash identifies a statement's text on a session (its prepared
// statement is named after it).
func textHash(query string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(query))
	return h.Sum64()
}

// maxSeen bounds the texts a session remembers having run once (see
// repeated).
const maxSeen = 1024

// repeated tells whether a read without parameters is to run prepared on
// the session: it is prepared already, or the session ran the very same
// text before (a dashboard's query with the same filters, a page without
// filters). A text seen once runs with the simple protocol, so texts that
// never repeat (cursors, changing filter values) cost no preparing. Never
// inside a transaction (see paramsFor), nor when the store does not
// prepare reads.
func (c *readRetryConn) repeated(h uint64, query string) bool {
	if !c.prepare || c.Conn.Conn().PgConn().TxStatus() != 'I' {
		return false
	}
	if sd := c.prepared[h]; sd != nil && sd.SQL == query {
		return true
	}
	if _, ok := c.seen[h]; ok {
		delete(c.seen, h)
		return true
	}
	if len(c.seen) >= maxSeen {
		clear(c.seen)
	}
	c.seen[h] = struct{}{}
	return false
}

// stalePlan tells whether err is PostgreSQL refusing a prepared statement
// whose table changed (its result's columns) since it was prepared.
func stalePlan(err error) bool {
	return isCode(err, "0A000") && strings.Contains(err.Error(), "cached plan must not change result type")
}

// isCode tells whether err is PostgreSQL's error with the SQLSTATE code.
func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// fieldKind is how a column is decoded.
type fieldKind uint8

const (
	kindSlow    fieldKind = iota // bun's scanner of the field, with database/sql's value
	kindInt                      // int, int64 from int2/int4/int8
	kindString                   // string from text, varchar
	kindBool                     // bool from bool
	kindFloat                    // float64 from float8
	kindTime                     // time.Time from timestamptz
	kindDecimal                  // Decimal (cents) from int8
)

// rowPlan is what a model type's fields need for fast reads.
type rowPlan struct {
	table *schema.Table
	typ   reflect.Type
}

// fieldPlan is a field's fast decoding, if it has one: the kind of its
// (pointed-to) value, its offset in the struct, and whether it is a
// pointer.
type fieldPlan struct {
	kind fieldKind
	off  uintptr
	ptr  bool
}

var (
	rowPlans   sync.Map // reflect.Type → *rowPlan (nil: bun scans)
	fieldPlans sync.Map // *schema.Field → fieldPlan
)

// rowPlanOf returns T's plan on a PostgreSQL db, or nil when bun scans T
// (another database, scan or select hooks).
func rowPlanOf[T any](db bun.IDB) *rowPlan {
	if db.Dialect().Name() != dialect.PG {
		return nil
	}
	typ := reflect.TypeFor[T]()
	if p, ok := rowPlans.Load(typ); ok {
		return p.(*rowPlan)
	}
	var p *rowPlan
	if typ.Kind() == reflect.Struct && !hasScanHooks(typ) {
		p = &rowPlan{table: db.Dialect().Tables().Get(typ), typ: typ}
	}
	rowPlans.Store(typ, p)
	return p
}

func hasScanHooks(typ reflect.Type) bool {
	ptr := reflect.PointerTo(typ)
	for _, h := range []reflect.Type{
		reflect.TypeFor[schema.BeforeScanRowHook](), reflect.TypeFor[schema.AfterScanRowHook](),
		reflect.TypeFor[schema.BeforeAppendModelHook](),
		reflect.TypeFor[bun.BeforeSelectHook](), reflect.TypeFor[bun.AfterSelectHook](),
	} {
		if ptr.Implements(h) || typ.Implements(h) {
			return true
		}
	}
	return false
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	decimalType = reflect.TypeFor[Decimal]()
	scannerType = reflect.TypeFor[sql.Scanner]()
)

// planField returns how field f of the struct type root is decoded.
func planField(f *schema.Field, root reflect.Type) fieldPlan {
	if p, ok := fieldPlans.Load(f); ok {
		return p.(fieldPlan)
	}
	p := fieldPlan{}
	if off, ok := fieldOffset(root, f.Index); ok && f.Scan != nil && !specialScan(f) {
		t := f.StructField.Type
		if t.Kind() == reflect.Pointer {
			p.ptr = true
			t = t.Elem()
		}
		p.off = off
		p.kind = valueKind(t)
		if p.ptr && p.kind == kindDecimal {
			p.kind = kindSlow
		}
	}
	fieldPlans.Store(f, p)
	return p
}

// specialScan tells whether bun scans f with something else than the
// scanner of its Go type.
func specialScan(f *schema.Field) bool {
	for _, o := range []string{"msgpack", "json_use_number", "array", "multirange", "composite", "hstore"} {
		if f.Tag.HasOption(o) {
			return true
		}
	}
	return strings.HasSuffix(f.UserSQLType, "]") || strings.HasSuffix(f.UserSQLType, "multirange") ||
		f.DiscoveredSQLType == sqltype.HSTORE
}

// valueKind is the fast kind of a Go value type, kindSlow when bun's
// scanner of it is not the plain one the fast kinds reproduce.
func valueKind(t reflect.Type) fieldKind {
	switch t {
	case timeType:
		return kindTime
	case decimalType:
		return kindDecimal
	}
	if t.Implements(scannerType) || reflect.PointerTo(t).Implements(scannerType) {
		return kindSlow
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64:
		if t.Size() == 8 {
			return kindInt
		}
	case reflect.String:
		return kindString
	case reflect.Bool:
		return kindBool
	case reflect.Float64:
		return kindFloat
	}
	return kindSlow
}

// fieldOffset is the offset of the field at index in root, if no pointer
// lies on the way.
func fieldOffset(root reflect.Type, index []int) (uintptr, bool) {
	var off uintptr
	t := root
	for _, i := range index {
		if t.Kind() != reflect.Struct {
			return 0, false
		}
		sf := t.Field(i)
		off += sf.Offset
		t = sf.Type
	}
	return off, true
}

// Column OIDs the fast kinds accept.
const (
	oidBool        = pgtype.BoolOID
	oidInt2        = pgtype.Int2OID
	oidInt4        = pgtype.Int4OID
	oidInt8        = pgtype.Int8OID
	oidText        = pgtype.TextOID
	oidVarchar     = pgtype.VarcharOID
	oidFloat8      = pgtype.Float8OID
	oidTimestamptz = pgtype.TimestamptzOID
)

// accepts tells whether a column of type oid (text format) decodes fast
// into kind.
func accepts(kind fieldKind, oid uint32) bool {
	switch kind {
	case kindInt:
		return oid == oidInt8 || oid == oidInt4 || oid == oidInt2
	case kindDecimal:
		return oid == oidInt8
	case kindString:
		return oid == oidText || oid == oidVarchar
	case kindBool:
		return oid == oidBool
	case kindFloat:
		return oid == oidFloat8
	case kindTime:
		return oid == oidTimestamptz
	}
	return false
}

// column is one column's decoder in a read.
type column struct {
	index int
	name  string
	field *schema.Field // nil: not a field of the model
	fieldPlan
	// convert makes the value database/sql's Rows.Next would hand to
	// bun (kindSlow, and values a fast kind does not read); made on first
	// use from the column's type.
	convert func([]byte) (driver.Value, error)
	tm      *pgtype.Map
	oid     uint32
	format  int16
	// tz decodes timestamptz as pgx does (kindTime).
	tzPlan pgtype.ScanPlan
	tz     pgtype.Timestamptz
}

// rowReader decodes the rows of one read into new T values.
type rowReader[T any] struct {
	plan  *rowPlan
	cols  []column
	rows  []T // allocated in chunks, handed out one by one
	chunk int // the size of the last chunk
	bytes []byte
}

const (
	rowChunkMax  = 64
	bytesChunk   = 4096
	bytesOwnSize = 512 // strings at least this long get memory of their own
)

func newRowReader[T any](p *rowPlan, tm *pgtype.Map, fds []pgconn.FieldDescription) (*rowReader[T], error) {
	r := &rowReader[T]{plan: p, cols: make([]column, len(fds))}
	for i := range fds {
		fd := &fds[i]
		c := &r.cols[i]
		c.index, c.name = i, unquote(fd.Name)
		c.tm, c.oid, c.format = tm, fd.DataTypeOID, fd.Format
		c.field = p.table.LookupField(c.name)
		if model, col, ok := strings.Cut(c.name, "__"); c.field == nil && ok && model == p.table.ModelName {
			c.field = p.table.LookupField(col) // bun reads <model>__<column> as <column>
		}
		if c.field == nil {
			continue
		}
		c.fieldPlan = planField(c.field, p.typ)
		if fd.Format != pgtype.TextFormatCode || !accepts(c.kind, fd.DataTypeOID) {
			c.kind = kindSlow
		}
		if c.kind == kindTime {
			c.tzPlan = tm.PlanScan(fd.DataTypeOID, fd.Format, &c.tz)
		}
	}
	return r, nil
}

// unquote is bun's: a column name in double quotes loses them.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		return s[1 : len(s)-1]
	}
	return s
}

// newRow returns a zero T.
func (r *rowReader[T]) newRow() *T {
	if len(r.rows) == 0 {
		r.chunk = min(max(2*r.chunk, 4), rowChunkMax)
		r.rows = make([]T, r.chunk)
	}
	row := &r.rows[0]
	r.rows = r.rows[1:]
	return row
}

// str returns b as a string, in memory shared with other strings of the
// read (strings never change, so sharing is safe; it spares an allocation
// per value).
func (r *rowReader[T]) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) >= bytesOwnSize {
		return string(b)
	}
	if cap(r.bytes)-len(r.bytes) < len(b) {
		r.bytes = make([]byte, 0, bytesChunk)
	}
	start := len(r.bytes)
	r.bytes = append(r.bytes, b...)
	return unsafe.String(&r.bytes[start], len(b))
}

func (r *rowReader[T]) read(values [][]byte) (*T, error) {
	row := r.newRow()
	base := unsafe.Pointer(row)
	for i := range r.cols {
		c := &r.cols[i]
		v := values[i]
		if c.field == nil {
			if c.name == "" || c.name[0] == '_' {
				continue
			}
			return row, scanError(c, fmt.Errorf("bun: %s does not have column %q", r.plan.table.TypeName, c.name))
		}
		if v == nil && c.kind != kindSlow && c.kind != kindDecimal {
			// bun leaves a new row's field zero (a pointer nil).
			continue
		}
		if c.kind == kindSlow || !r.decode(c, base, v) {
			if err := r.slow(c, row, v); err != nil {
				return row, err
			}
		}
	}
	return row, nil
}

// decode stores a non-NULL value in its field; false if it cannot (bun's
// scanner then decides, with the value database/sql would give it).
func (r *rowReader[T]) decode(c *column, base unsafe.Pointer, v []byte) bool {
	if v == nil {
		return false
	}
	p := unsafe.Add(base, c.off)
	switch c.kind {
	case kindInt, kindDecimal:
		n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(v), len(v)), 10, 64)
		if err != nil {
			return false
		}
		switch {
		case c.kind == kindDecimal:
			*(*Decimal)(p) = Cents(n)
		case c.ptr:
			*(**int64)(p) = newOf(n)
		default:
			*(*int64)(p) = n
		}
	case kindString:
		s := r.str(v)
		if c.ptr {
			*(**string)(p) = newOf(s)
		} else {
			*(*string)(p) = s
		}
	case kindBool:
		var b bool
		switch string(v) {
		case "t":
			b = true
		case "f":
		default:
			return false
		}
		if c.ptr {
			*(**bool)(p) = newOf(b)
		} else {
			*(*bool)(p) = b
		}
	case kindFloat:
		f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(v), len(v)), 64)
		if err != nil {
			return false
		}
		if c.ptr {
			*(**float64)(p) = newOf(f)
		} else {
			*(*float64)(p) = f
		}
	case kindTime:
		if err := c.tzPlan.Scan(v, &c.tz); err != nil || !c.tz.Valid || c.tz.InfinityModifier != pgtype.Finite {
			return false
		}
		t := c.tz.Time
		if c.ptr {
			*(**time.Time)(p) = newOf(t)
		} else {
			*(*time.Time)(p) = t
		}
	default:
		return false
	}
	return true
}

// newOf returns a new variable holding v (values of pointer fields; a
// plain &v would make every v of decode escape).
func newOf[V any](v V) *V {
	p := new(V)
	*p = v
	return p
}

// slow hands the value database/sql would produce to bun's scanner of the
// field, with database/sql's and pgx's error wrapping.
func (r *rowReader[T]) slow(c *column, row *T, v []byte) error {
	var src driver.Value
	if v != nil {
		if c.convert == nil {
			c.convert = databaseSQLValue(c.tm, c.oid, c.format)
		}
		var err error
		if src, err = c.convert(v); err != nil {
			return fmt.Errorf("convert field %d failed: %w", c.index, err)
		}
	}
	if err := c.field.ScanValue(reflect.ValueOf(row).Elem(), src); err != nil {
		return scanError(c, err)
	}
	return nil
}

func scanError(c *column, err error) error {
	return fmt.Errorf("sql: Scan error on column index %d, name %q: %w", c.index, c.name, err)
}

// databaseSQLValue returns what pgx's database/sql adapter (stdlib.Rows.Next)
// makes of a column's non-NULL values.
func databaseSQLValue(m *pgtype.Map, oid uint32, format int16) func([]byte) (driver.Value, error) {
	switch oid {
	case pgtype.BoolOID:
		return planned[bool](m, oid, format, func(d bool) (driver.Value, error) { return d, nil })
	case pgtype.ByteaOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.XMLOID:
		return planned[[]byte](m, oid, format, func(d []byte) (driver.Value, error) { return d, nil })
	case pgtype.CIDOID, pgtype.OIDOID, pgtype.XIDOID:
		return planned[pgtype.Uint32](m, oid, format, func(d pgtype.Uint32) (driver.Value, error) { return d.Value() })
	case pgtype.DateOID:
		return planned[pgtype.Date](m, oid, format, func(d pgtype.Date) (driver.Value, error) { return d.Value() })
	case pgtype.Float4OID:
		return planned[float32](m, oid, format, func(d float32) (driver.Value, error) { return float64(d), nil })
	case pgtype.Float8OID:
		return planned[float64](m, oid, format, func(d float64) (driver.Value, error) { return d, nil })
	case pgtype.Int2OID:
		return planned[int16](m, oid, format, func(d int16) (driver.Value, error) { return int64(d), nil })
	case pgtype.Int4OID:
		return planned[int32](m, oid, format, func(d int32) (driver.Value, error) { return int64(d), nil })
	case pgtype.Int8OID:
		return planned[int64](m, oid, format, func(d int64) (driver.Value, error) { return d, nil })
	case pgtype.TimestampOID:
		return planned[pgtype.Timestamp](m, oid, format, func(d pgtype.Timestamp) (driver.Value, error) { return d.Value() })
	case pgtype.TimestamptzOID:
		return planned[pgtype.Timestamptz](m, oid, format, func(d pgtype.Timestamptz) (driver.Value, error) { return d.Value() })
	default:
		return planned[string](m, oid, format, func(d string) (driver.Value, error) { return d, nil })
	}
}

// planned scans into a D with pgx's plan (made on first use) and converts
// the result; like stdlib's, the D is reused from value to value.
func planned[D any](m *pgtype.Map, oid uint32, format int16, value func(D) (driver.Value, error)) func([]byte) (driver.Value, error) {
	var d D
	var plan pgtype.ScanPlan
	return func(src []byte) (driver.Value, error) {
		if plan == nil {
			plan = m.PlanScan(oid, format, &d)
		}
		err := plan.Scan(src, &d)
		if err != nil {
			return nil, err
		}
		return value(d)
	}
}

// int64Of returns a reader of the int64 (or *int64) field of column in T's
// rows, as columnValue would read it without boxing it in an interface:
// the value and whether it is there (false for a nil pointer).
func int64Of[T any](table *schema.Table, column string) (func(*T) (int64, bool), error) {
	f, ok := table.FieldMap[column]
	if !ok {
		return nil, fmt.Errorf("%s has no column %s", table.TypeName, column)
	}
	off, direct := fieldOffset(reflect.TypeFor[T](), f.Index)
	switch t := f.StructField.Type; {
	case direct && t == reflect.TypeFor[int64]():
		return func(r *T) (int64, bool) { return *(*int64)(unsafe.Add(unsafe.Pointer(r), off)), true }, nil
	case direct && t == reflect.TypeFor[*int64]():
		return func(r *T) (int64, bool) {
			p := *(**int64)(unsafe.Add(unsafe.Pointer(r), off))
			if p == nil {
				return 0, false
			}
			return *p, true
		}, nil
	}
	return func(r *T) (int64, bool) {
		switch v := f.Value(reflect.ValueOf(r).Elem()).Interface().(type) {
		case int64:
			return v, true
		case *int64:
			if v != nil {
				return *v, true
			}
		}
		return 0, false
	}, nil
}
