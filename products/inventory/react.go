package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/meshgate/meshgate/products"
)

// batch applies a batch of order change events as ApplyOrder applies one,
// with a few statements for the whole batch: Apply reads each event, Flush
// loads (and locks) the batch's reservations and the items of their lines
// with one statement each, reserves and releases in the batch's order in
// memory, auditing every step with the request id of the event that caused
// it, then writes the new reservations, the released ones and the items'
// stock with one statement each (per 500 rows).
type batch struct {
	steps []orderStep
}

// orderStep is one event's effect on inventory: reserve the order's stock,
// or release it.
type orderStep struct {
	order   *orderEvent
	release bool
	cause   string
}

func (b *batch) Apply(ctx context.Context, tx *products.Tx, e *products.AuditEntry) error {
	if e.Entity != "Order" || e.After == nil {
		return nil
	}
	var after orderEvent
	if err := json.Unmarshal([]byte(*e.After), &after); err != nil {
		return fmt.Errorf("decode order %d: %w", e.Key, err)
	}
	switch {
	case e.Op == products.OpCreate && after.Status == "PLACED":
		b.steps = append(b.steps, orderStep{order: &after, cause: tx.CauseID()})
	case e.Op == products.OpUpdate && after.Status == "CANCELLED":
		b.steps = append(b.steps, orderStep{order: &after, release: true, cause: tx.CauseID()})
	}
	return nil
}

func (b *batch) Flush(ctx context.Context, tx *products.Tx) error {
	if len(b.steps) == 0 {
		return nil
	}
	var ids []int64
	seen := map[int64]bool{}
	for _, s := range b.steps {
		if !seen[s.order.ID] {
			seen[s.order.ID] = true
			ids = append(ids, s.order.ID)
		}
	}
	res, err := products.GetManyForUpdate[Reservation](ctx, tx, ReservationEntity, ids)
	if err != nil {
		return err
	}
	var itemIDs []int64
	wanted := map[int64]bool{}
	want := func(id int64) {
		if !wanted[id] {
			wanted[id] = true
			itemIDs = append(itemIDs, id)
		}
	}
	for _, s := range b.steps {
		for _, l := range s.order.Lines {
			want(l.ItemID)
		}
	}
	for _, r := range res {
		if r.Status == Reserved {
			for _, l := range r.Lines {
				want(l.ItemID)
			}
		}
	}
	items, err := products.GetManyForUpdate[Item](ctx, tx, Entity, itemIDs)
	if err != nil {
		return err
	}
	shared := tx.CauseID()
	defer tx.Cause(shared)
	fresh := map[int64]bool{}    // reservations to insert (as they end)
	released := map[int64]bool{} // stored reservations released
	stocked := map[int64]bool{}  // items whose stock changed
	adjust := func(it *Item, delta int) error {
		before := *it
		it.Stock += delta
		it.UpdatedAt = tx.Now()
		stocked[it.ID] = true
		return tx.Updated(Entity, it.ID, &before, it)
	}
	for _, s := range b.steps {
		tx.Cause(s.cause)
		id := s.order.ID
		cur := res[id]
		if !s.release {
			if cur != nil {
				continue // reserved (or released) before
			}
			r := &Reservation{ID: id, Status: Reserved, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
			for _, l := range s.order.Lines {
				it := items[l.ItemID]
				short := it == nil || it.Stock < l.Quantity
				if short {
					r.Status = Backordered
				}
				r.Lines = append(r.Lines, ReservationLine{ItemID: l.ItemID, Quantity: l.Quantity, Short: short})
			}
			if r.Status == Reserved {
				for _, l := range s.order.Lines {
					if err := adjust(items[l.ItemID], -l.Quantity); err != nil {
						return err
					}
				}
			}
			res[id], fresh[id] = r, true
			if err := tx.Created(ReservationEntity, r.ID, r); err != nil {
				return err
			}
			continue
		}
		if cur == nil {
			// Cancelled before inventory saw it placed: remember that, so
			// that its creation, if it comes late, reserves nothing.
			r := &Reservation{ID: id, Status: Released, Lines: []ReservationLine{}, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
			res[id], fresh[id] = r, true
			if err := tx.Created(ReservationEntity, r.ID, r); err != nil {
				return err
			}
			continue
		}
		if cur.Status == Released {
			continue
		}
		if cur.Status == Reserved {
			for _, l := range cur.Lines {
				if it := items[l.ItemID]; it != nil {
					if err := adjust(it, l.Quantity); err != nil {
						return err
					}
				}
			}
		}
		r := *cur
		r.Status, r.UpdatedAt = Released, tx.Now()
		res[id] = &r
		if !fresh[id] {
			released[id] = true
		}
		if err := tx.Updated(ReservationEntity, r.ID, cur, &r); err != nil {
			return err
		}
	}
	return writeReservations(ctx, tx, ids, res, fresh, released, items, stocked)
}

// writeReservations stores what Flush did: the new reservations, the
// released ones, the items' stock.
func writeReservations(ctx context.Context, tx *products.Tx, ids []int64, res map[int64]*Reservation, fresh, released map[int64]bool,
	items map[int64]*Item, stocked map[int64]bool) error {
	var rows []Reservation
	var gone []int64
	for _, id := range ids {
		switch {
		case fresh[id]:
			rows = append(rows, *res[id])
		case released[id]:
			gone = append(gone, id)
		}
	}
	for i := 0; i < len(rows); i += 500 {
		part := rows[i:min(i+500, len(rows))]
		if _, err := tx.NewInsert().Model(&part).Exec(ctx); err != nil {
			return fmt.Errorf("insert %d reservations: %w", len(part), err)
		}
	}
	for i := 0; i < len(gone); i += 500 {
		if _, err := tx.NewUpdate().Model((*Reservation)(nil)).Set("status = ?", Released).Set("updated_at = ?", tx.Now()).
			Where("id IN (?)", bun.List(gone[i:min(i+500, len(gone))])).Exec(ctx); err != nil {
			return fmt.Errorf("release %d reservations: %w", len(gone), err)
		}
	}
	var changed []*Item
	for id := range stocked {
		changed = append(changed, items[id])
	}
	// One statement per 500 items: each item's stock from a list of
	// (id, stock) pairs (PostgreSQL and SQLite both update from a CTE).
	for i := 0; i < len(changed); i += 500 {
		part := changed[i:min(i+500, len(changed))]
		var q strings.Builder
		args := make([]any, 0, 2*len(part)+1)
		q.WriteString("WITH v (id, stock) AS (VALUES ")
		for j, it := range part {
			if j > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?)")
			args = append(args, it.ID, it.Stock)
		}
		q.WriteString(") UPDATE items SET stock = v.stock, updated_at = ? FROM v WHERE items.id = v.id")
		args = append(args, tx.Now())
		if _, err := tx.NewRaw(q.String(), args...).Exec(ctx); err != nil {
			return fmt.Errorf("adjust the stock of %d items: %w", len(part), err)
		}
	}
	return nil
}
