package products

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// consumedEvent records that a product applied another product's change
// (source product, sequence), in the same transaction as the effect, so a
// redelivered event is recognised and skipped: exactly-once effect on top
// of at-least-once delivery, whatever order events of different topics
// arrive in.
type consumedEvent struct {
	bun.BaseModel `bun:"table:mg_consumed"`

	Source   string `bun:"source,pk"`
	Sequence int64  `bun:"sequence,pk"`
}

// SourcePosition is how far a product has applied a source product's
// changes: the highest sequence applied and when that change was committed
// at the source.
type SourcePosition struct {
	bun.BaseModel `bun:"table:mg_source_positions"`

	Source    string    `bun:"source,pk" json:"source"`
	Sequence  int64     `bun:"sequence,notnull" json:"sequence"`
	At        time.Time `bun:"at,notnull" json:"at"`
	AppliedAt time.Time `bun:"applied_at,notnull" json:"appliedAt"`
	Applied   int64     `bun:"applied,notnull" json:"applied"`
}

// Consume records, inside tx, that the change (source, sequence) committed
// at the source at time at is being applied. It returns false if it was
// applied before: the caller must then skip it.
func (t *Tx) Consume(ctx context.Context, source string, sequence int64, at time.Time) (bool, error) {
	res, err := t.NewInsert().Model(&consumedEvent{Source: source, Sequence: sequence}).
		On("CONFLICT DO NOTHING").Exec(ctx)
	if err != nil {
		return false, fmt.Errorf("record consumed %s/%d: %w", source, sequence, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	pos := &SourcePosition{Source: source, Sequence: sequence, At: at.UTC(), AppliedAt: t.now, Applied: 1}
	if _, err := t.NewInsert().Model(pos).
		On("CONFLICT (source) DO UPDATE").
		Set("sequence = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.sequence ELSE ?TableAlias.sequence END").
		Set("at = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.at ELSE ?TableAlias.at END").
		Set("applied_at = EXCLUDED.applied_at").
		Set("applied = ?TableAlias.applied + 1").
		Exec(ctx); err != nil {
		return false, fmt.Errorf("record position of %s: %w", source, err)
	}
	return true, nil
}

// Consumed is one source change a batch is about to apply (see
// Tx.ConsumeAll).
type Consumed struct {
	Source   string
	Sequence int64
	At       time.Time
}

// consumeChunk bounds the rows of one multi-row statement (SQLite allows
// 32,766 parameters).
const consumeChunk = 500

// ConsumeAll is Consume for a batch of changes in a few statements: one
// multi-row insert into the record of applied changes per 500 changes and
// one for the sources' positions. fresh[i] tells whether events[i] is to be
// applied; false means it was applied before, or it repeats an earlier
// event of the batch: the caller must then skip it.
func (t *Tx) ConsumeAll(ctx context.Context, events []Consumed) (fresh []bool, err error) {
	fresh = make([]bool, len(events))
	type pos struct {
		source   string
		sequence int64
	}
	first := make(map[pos]int, len(events)) // the index of each change's first event
	rows := make([]consumedEvent, 0, len(events))
	for i, e := range events {
		k := pos{e.Source, e.Sequence}
		if _, ok := first[k]; ok {
			continue
		}
		first[k] = i
		rows = append(rows, consumedEvent{Source: e.Source, Sequence: e.Sequence})
	}
	for i := 0; i < len(rows); i += consumeChunk {
		part := rows[i:min(i+consumeChunk, len(rows))]
		var inserted []consumedEvent
		if err := t.NewInsert().Model(&part).On("CONFLICT DO NOTHING").Returning("source, sequence").
			Scan(ctx, &inserted); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("record %d consumed changes: %w", len(part), err)
		}
		for _, r := range inserted {
			fresh[first[pos{r.Source, r.Sequence}]] = true
		}
	}
	// One position per source: the highest sequence applied, how many.
	bySource := map[string]*SourcePosition{}
	var sources []string
	for i, e := range events {
		if !fresh[i] {
			continue
		}
		p := bySource[e.Source]
		if p == nil {
			p = &SourcePosition{Source: e.Source, AppliedAt: t.now}
			bySource[e.Source] = p
			sources = append(sources, e.Source)
		}
		p.Applied++
		if e.Sequence > p.Sequence {
			p.Sequence, p.At = e.Sequence, e.At.UTC()
		}
	}
	if len(sources) == 0 {
		return fresh, nil
	}
	sort.Strings(sources)
	positions := make([]SourcePosition, len(sources))
	for i, s := range sources {
		positions[i] = *bySource[s]
	}
	if _, err := t.NewInsert().Model(&positions).
		On("CONFLICT (source) DO UPDATE").
		Set("sequence = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.sequence ELSE ?TableAlias.sequence END").
		Set("at = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.at ELSE ?TableAlias.at END").
		Set("applied_at = EXCLUDED.applied_at").
		Set("applied = ?TableAlias.applied + EXCLUDED.applied").
		Exec(ctx); err != nil {
		return nil, fmt.Errorf("record positions of %v: %w", sources, err)
	}
	return fresh, nil
}

// keyPosition is the newest position of a source's entity key whose change
// a product has applied: the source's events for one key may arrive out of
// order (a broker that lost its log, a republish racing live publishing),
// and a state-based reaction must never let an older change override the
// effect of a newer one.
type keyPosition struct {
	bun.BaseModel `bun:"table:mg_key_positions"`

	Source   string `bun:"source,pk"`
	Entity   string `bun:"entity,pk"`
	Key      int64  `bun:"key,pk"`
	Sequence int64  `bun:"sequence,notnull"`
}

// keyRef names a source's entity key.
type keyRef struct {
	source, entity string
	key            int64
}

// keyState is a key's newest applied sequence as a batch sees it: read
// once (LoadNewest), advanced in memory, written back once (SaveNewest).
type keyState struct {
	sequence int64
	dirty    bool
}

// LoadNewest reads, inside tx, the newest applied positions of the keys of
// the given changes (one statement per source entity and 500 keys), so that
// Newest answers for them from memory; SaveNewest must then be called
// before the transaction commits. The caller holds the product's reaction
// lock (Store.WriteExclusive), so nothing else changes these rows meanwhile.
func (t *Tx) LoadNewest(ctx context.Context, changes []*AuditEntry) error {
	if t.keys == nil {
		t.keys = map[keyRef]*keyState{}
	}
	type entity struct{ source, entity string }
	wanted := map[entity][]int64{}
	var order []entity
	for _, e := range changes {
		k := keyRef{e.Product, e.Entity, e.Key}
		if _, ok := t.keys[k]; ok {
			continue
		}
		t.keys[k] = &keyState{}
		en := entity{e.Product, e.Entity}
		if _, ok := wanted[en]; !ok {
			order = append(order, en)
		}
		wanted[en] = append(wanted[en], e.Key)
	}
	for _, en := range order {
		ids := wanted[en]
		for i := 0; i < len(ids); i += consumeChunk {
			var rows []keyPosition
			if err := t.NewSelect().Model(&rows).Where("source = ? AND entity = ? AND key IN (?)", en.source, en.entity,
				bun.List(ids[i:min(i+consumeChunk, len(ids))])).Scan(ctx); err != nil {
				return fmt.Errorf("read positions of %s %s: %w", en.source, en.entity, err)
			}
			for _, r := range rows {
				t.keys[keyRef{r.Source, r.Entity, r.Key}].sequence = r.Sequence
			}
		}
	}
	return nil
}

// saveNewestSQL is SaveNewest's upsert on PostgreSQL, for all the keys at
// once (given sorted, as arrays).
const saveNewestSQL = `INSERT INTO mg_key_positions AS kp (source, entity, "key", sequence)
SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::bigint[])
ON CONFLICT (source, entity, "key") DO UPDATE SET
	sequence = CASE WHEN EXCLUDED.sequence > kp.sequence THEN EXCLUDED.sequence ELSE kp.sequence END`

// SaveNewest writes the positions Newest advanced in memory since
// LoadNewest (or ConsumeBatch): one upsert on PostgreSQL, one multi-row
// upsert per 500 keys on SQLite.
func (t *Tx) SaveNewest(ctx context.Context) error {
	var rows []keyPosition
	for k, st := range t.keys {
		if st.dirty {
			rows = append(rows, keyPosition{Source: k.source, Entity: k.entity, Key: k.key, Sequence: st.sequence})
			st.dirty = false
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Entity != b.Entity {
			return a.Entity < b.Entity
		}
		return a.Key < b.Key
	})
	if len(rows) > 0 && !t.store.sqlite {
		// One statement for all of them.
		sources, entities := make([]string, len(rows)), make([]string, len(rows))
		keys, sequences := make([]int64, len(rows)), make([]int64, len(rows))
		for i, r := range rows {
			sources[i], entities[i], keys[i], sequences[i] = r.Source, r.Entity, r.Key, r.Sequence
		}
		if _, err := t.NewRaw(saveNewestSQL, pgdialect.Array(sources), pgdialect.Array(entities), pgdialect.Array(keys),
			pgdialect.Array(sequences)).Exec(ctx); err != nil {
			return fmt.Errorf("record positions of %d keys: %w", len(rows), err)
		}
		return nil
	}
	for i := 0; i < len(rows); i += consumeChunk {
		part := rows[i:min(i+consumeChunk, len(rows))]
		if _, err := t.NewInsert().Model(&part).
			On("CONFLICT (source, entity, key) DO UPDATE").
			Set("sequence = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.sequence ELSE ?TableAlias.sequence END").
			Exec(ctx); err != nil {
			return fmt.Errorf("record positions of %d keys: %w", len(part), err)
		}
	}
	return nil
}

// Newest records, inside tx, that the change at sequence of the source's
// entity key is being applied, and tells whether it is the newest change
// of that key applied so far. false means a newer change of the key was
// applied before: this one is stale and must not override its effect.
// One statement; the key's row stays locked until the transaction ends.
// For a key LoadNewest read, it is answered from memory (and written by
// SaveNewest).
func (t *Tx) Newest(ctx context.Context, source, entity string, key, sequence int64) (bool, error) {
	if st := t.keys[keyRef{source, entity, key}]; st != nil {
		if sequence < st.sequence {
			return false, nil
		}
		if sequence > st.sequence {
			st.sequence, st.dirty = sequence, true
		}
		return true, nil
	}
	var newest int64
	err := t.NewInsert().Model(&keyPosition{Source: source, Entity: entity, Key: key, Sequence: sequence}).
		On("CONFLICT (source, entity, key) DO UPDATE").
		Set("sequence = CASE WHEN EXCLUDED.sequence > ?TableAlias.sequence THEN EXCLUDED.sequence ELSE ?TableAlias.sequence END").
		Returning("sequence").Scan(ctx, &newest)
	if err != nil {
		return false, fmt.Errorf("record position of %s %s %d: %w", source, entity, key, err)
	}
	return newest == sequence, nil
}

// SourcePositions returns how far the product has applied each source.
func (s *Store) SourcePositions(ctx context.Context) ([]SourcePosition, error) {
	var out []SourcePosition
	if err := s.DB.NewSelect().Model(&out).Order("source").Scan(ctx); err != nil {
		return nil, fmt.Errorf("%s: source positions: %w", s.Product.Name, err)
	}
	return out, nil
}

// ForgetConsumed deletes the record of applied changes (for a replay from
// the beginning, together with the product's derived data).
func (s *Store) ForgetConsumed(ctx context.Context, tx bun.IDB) error {
	for _, m := range []any{(*consumedEvent)(nil), (*SourcePosition)(nil), (*keyPosition)(nil)} {
		if _, err := tx.NewDelete().Model(m).Where("1=1").Exec(ctx); err != nil {
			return fmt.Errorf("%s: forget consumed: %w", s.Product.Name, err)
		}
	}
	return nil
}

// ConsumedThrough returns how many changes of source up to sequence through
// the product has applied, and the lowest sequence among them (0: none).
// It counts the record of applied changes: for checks after a replay, not
// for figures read often.
func (s *Store) ConsumedThrough(ctx context.Context, source string, through int64) (n, first int64, err error) {
	var row struct {
		N     int64 `bun:"n"`
		First int64 `bun:"first"`
	}
	if err := s.DB.NewSelect().Model((*consumedEvent)(nil)).ColumnExpr("COUNT(*) AS n, COALESCE(MIN(sequence), 0) AS first").
		Where("source = ? AND sequence <= ?", source, through).Scan(ctx, &row); err != nil {
		return 0, 0, fmt.Errorf("%s: count applied changes of %s: %w", s.Product.Name, source, err)
	}
	return row.N, row.First, nil
}

// consumeBatchSQL is ConsumeBatch on PostgreSQL, one statement: the
// batch's events (source, sequence, at) that were parked before, the
// others recorded as consumed (the ones inserted come back), the sources'
// positions advanced by the inserted ones, and the newest applied
// positions of the batch's keys.
const consumeBatchSQL = `WITH v AS (
	SELECT DISTINCT ON (source, sequence) source, sequence, at
	FROM unnest(?::text[], ?::bigint[], ?::timestamptz[]) AS v(source, sequence, at) ORDER BY source, sequence),
parked AS (SELECT d.source, d.sequence FROM mg_dead_letters AS d JOIN v ON d.source = v.source AND d.sequence = v.sequence WHERE d.status = ?),
ins AS (INSERT INTO mg_consumed (source, sequence)
	SELECT v.source, v.sequence FROM v WHERE NOT EXISTS (SELECT 1 FROM parked AS p WHERE p.source = v.source AND p.sequence = v.sequence)
	ORDER BY v.source, v.sequence
	ON CONFLICT DO NOTHING RETURNING source, sequence),
pos AS (INSERT INTO mg_source_positions AS sp (source, sequence, at, applied_at, applied)
	SELECT ins.source, max(ins.sequence), (array_agg(v.at ORDER BY ins.sequence DESC))[1], ?::timestamptz, count(*)
	FROM ins JOIN v ON v.source = ins.source AND v.sequence = ins.sequence GROUP BY ins.source ORDER BY ins.source
	ON CONFLICT (source) DO UPDATE SET
		sequence = CASE WHEN EXCLUDED.sequence > sp.sequence THEN EXCLUDED.sequence ELSE sp.sequence END,
		at = CASE WHEN EXCLUDED.sequence > sp.sequence THEN EXCLUDED.at ELSE sp.at END,
		applied_at = EXCLUDED.applied_at,
		applied = sp.applied + EXCLUDED.applied)
SELECT 'c' AS kind, source, '' AS entity, 0::bigint AS "key", sequence FROM ins
UNION ALL SELECT 'p', source, '', 0, sequence FROM parked
UNION ALL SELECT 'k', kp.source, kp.entity, kp."key", kp.sequence FROM mg_key_positions AS kp
	JOIN (SELECT DISTINCT source, entity, "key" FROM unnest(?::text[], ?::text[], ?::bigint[]) AS k(source, entity, "key")) AS k
	ON kp.source = k.source AND kp.entity = k.entity AND kp."key" = k."key"`

// ConsumeBatch starts applying a batch of source changes inside tx (the
// caller holds the product's reaction lock): it returns the batch's parked
// events (dead letters by DeadLetter.Position: they are skipped), records
// the others as consumed (ConsumeAll: fresh[i] tells whether events[i] is
// to be applied) and loads the newest applied positions of their keys
// (LoadNewest; SaveNewest must be called before the transaction commits).
// On PostgreSQL that is one statement (and one more when events were
// parked, to read their dead letters); on SQLite, a few.
func (t *Tx) ConsumeBatch(ctx context.Context, events []*AuditEntry) (parked map[string]*DeadLetter, fresh []bool, err error) {
	if t.store.sqlite {
		return t.consumeBatchSteps(ctx, events)
	}
	fresh = make([]bool, len(events))
	if len(events) == 0 {
		return map[string]*DeadLetter{}, fresh, nil
	}
	sources, entities := make([]string, len(events)), make([]string, len(events))
	sequences, keys := make([]int64, len(events)), make([]int64, len(events))
	ats := make([]time.Time, len(events))
	if t.keys == nil {
		t.keys = map[keyRef]*keyState{}
	}
	loading := map[keyRef]bool{} // the keys whose positions are read now
	for i, e := range events {
		sources[i], entities[i], sequences[i], keys[i], ats[i] = e.Product, e.Entity, e.Sequence, e.Key, e.At.UTC()
		if k := (keyRef{e.Product, e.Entity, e.Key}); t.keys[k] == nil {
			t.keys[k], loading[k] = &keyState{}, true
		}
	}
	var rows []struct {
		Kind     string `bun:"kind"`
		Source   string `bun:"source"`
		Entity   string `bun:"entity"`
		Key      int64  `bun:"key"`
		Sequence int64  `bun:"sequence"`
	}
	if err := t.NewRaw(consumeBatchSQL, pgdialect.Array(sources), pgdialect.Array(sequences), pgdialect.Array(ats), Parked, t.now,
		pgdialect.Array(sources), pgdialect.Array(entities), pgdialect.Array(keys)).Scan(ctx, &rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("record %d consumed changes: %w", len(events), err)
	}
	type pos struct {
		source   string
		sequence int64
	}
	inserted := map[pos]bool{}
	bySource := map[string][]int64{}
	for _, r := range rows {
		switch r.Kind {
		case "c":
			inserted[pos{r.Source, r.Sequence}] = true
		case "p":
			bySource[r.Source] = append(bySource[r.Source], r.Sequence)
		case "k":
			if k := (keyRef{r.Source, r.Entity, r.Key}); loading[k] {
				t.keys[k].sequence = r.Sequence
			}
		}
	}
	for i, e := range events {
		k := pos{e.Product, e.Sequence}
		if inserted[k] {
			fresh[i] = true
			delete(inserted, k) // a repeat within the batch is not fresh
		}
	}
	if len(bySource) == 0 {
		return map[string]*DeadLetter{}, fresh, nil
	}
	parked, err = t.ParkedAmong(ctx, bySource)
	return parked, fresh, err
}

// consumeBatchSteps is ConsumeBatch in several statements (SQLite).
func (t *Tx) consumeBatchSteps(ctx context.Context, events []*AuditEntry) (map[string]*DeadLetter, []bool, error) {
	sequences := map[string][]int64{}
	for _, e := range events {
		sequences[e.Product] = append(sequences[e.Product], e.Sequence)
	}
	parked, err := t.ParkedAmong(ctx, sequences)
	if err != nil {
		return nil, nil, err
	}
	var consumed []Consumed
	var at []int // consumed[j] is events[at[j]]
	for i, e := range events {
		if parked[fmt.Sprintf("%s/%d", e.Product, e.Sequence)] != nil {
			continue
		}
		consumed = append(consumed, Consumed{Source: e.Product, Sequence: e.Sequence, At: e.At})
		at = append(at, i)
	}
	ok, err := t.ConsumeAll(ctx, consumed)
	if err != nil {
		return nil, nil, err
	}
	fresh := make([]bool, len(events))
	var changes []*AuditEntry
	for j, i := range at {
		if ok[j] {
			fresh[i] = true
			changes = append(changes, events[i])
		}
	}
	if err := t.LoadNewest(ctx, changes); err != nil {
		return nil, nil, err
	}
	return parked, fresh, nil
}
