// Package streaming moves the data products' changes through Kafka: the
// change-event envelope, the outbox relay that publishes audit entries, the
// embedded broker, and (later) the consumers that fan events out.
package streaming

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/meshgate/meshgate/products"
)

// Connector names meshgate in the envelope's source block.
const Connector = "meshgate"

// Envelope is a change event in Debezium's JSON envelope, plus the actor and
// request id of the change.
type Envelope struct {
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
	Source    Source          `json:"source"`
	Op        string          `json:"op"`
	TsMs      int64           `json:"ts_ms"`
	TsUs      int64           `json:"ts_us"`
	Actor     string          `json:"actor"`
	RequestID string          `json:"requestId"`
}

// Source is the envelope's source block: where the change happened.
type Source struct {
	Connector string `json:"connector"`
	Version   string `json:"version"`
	Name      string `json:"name"`
	DB        string `json:"db"`
	Table     string `json:"table"`
	Entity    string `json:"entity"`
	Sequence  int64  `json:"sequence"`
	TsMs      int64  `json:"ts_ms"`
	TsUs      int64  `json:"ts_us"`
}

// Key is the message key: the entity key as JSON, as Debezium writes it.
type Key struct {
	ID int64 `json:"id"`
}

var debeziumOps = map[products.Op]string{products.OpCreate: "c", products.OpUpdate: "u", products.OpDelete: "d"}

var cloudEventVerbs = map[products.Op]string{products.OpCreate: "created", products.OpUpdate: "updated", products.OpDelete: "deleted"}

// Codec turns audit entries into Kafka messages.
type Codec struct {
	// Prefix is the first part of every topic and the envelope's source.name.
	Prefix string
	// Version is meshgate's version, written to source.version.
	Version string
}

// Topic returns the topic of an entity: <prefix>.<product>.<table>, like
// Debezium's <server>.<schema>.<table>.
func (c Codec) Topic(product string, e *products.Entity) string {
	return c.Prefix + "." + product + "." + e.Table
}

// Message encodes one audit entry of product d as a Kafka message: key
// {"id": key}, value the envelope, CloudEvents attributes as headers.
func (c Codec) Message(d *products.Descriptor, a *products.AuditEntry) (*sarama.ProducerMessage, error) {
	e := d.Entity(a.Entity)
	if e == nil {
		return nil, fmt.Errorf("%s: audit entry %d names unknown entity %q", d.Name, a.Sequence, a.Entity)
	}
	at := a.At.UTC()
	env := Envelope{
		Source: Source{
			Connector: Connector, Version: c.Version, Name: c.Prefix,
			DB: d.Name, Table: e.Table, Entity: e.Name, Sequence: a.Sequence, TsMs: at.UnixMilli(), TsUs: at.UnixMicro(),
		},
		Op: debeziumOps[a.Op], TsMs: at.UnixMilli(), TsUs: at.UnixMicro(), Actor: a.Actor, RequestID: a.RequestID,
	}
	if a.Before != nil {
		env.Before = json.RawMessage(*a.Before)
	}
	if a.After != nil {
		env.After = json.RawMessage(*a.After)
	}
	value, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	key, _ := json.Marshal(Key{ID: a.Key})
	topic := c.Topic(d.Name, e)
	m := &sarama.ProducerMessage{
		Topic:     topic,
		Key:       sarama.ByteEncoder(key),
		Value:     sarama.ByteEncoder(value),
		Timestamp: at,
		Headers: []sarama.RecordHeader{
			{Key: []byte("ce_id"), Value: []byte(d.Name + "-" + strconv.FormatInt(a.Sequence, 10))},
			{Key: []byte("ce_source"), Value: []byte("/" + c.Prefix + "/" + d.Name)},
			{Key: []byte("ce_type"), Value: []byte(c.Prefix + "." + d.Name + "." + e.Name + "." + cloudEventVerbs[a.Op])},
			{Key: []byte("ce_specversion"), Value: []byte("1.0")},
			{Key: []byte("ce_time"), Value: []byte(at.Format(time.RFC3339Nano))},
			{Key: []byte("ce_subject"), Value: []byte(strconv.FormatInt(a.Key, 10))},
			{Key: []byte("content-type"), Value: []byte("application/json")},
		},
	}
	if a.TraceParent != "" {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(traceHeader), Value: []byte(a.TraceParent)})
	}
	return m, nil
}

// position reads a change event's product and sequence from its ce_id
// header ("<product>-<sequence>", see Message) without decoding the
// envelope; false if the message has no such header.
func (Codec) position(m *sarama.ConsumerMessage) (product string, sequence int64, ok bool) {
	for _, h := range m.Headers {
		if h == nil || string(h.Key) != "ce_id" {
			continue
		}
		i := bytes.LastIndexByte(h.Value, '-')
		if i <= 0 {
			return "", 0, false
		}
		n, err := strconv.ParseInt(string(h.Value[i+1:]), 10, 64)
		if err != nil || n <= 0 {
			return "", 0, false
		}
		return string(h.Value[:i]), n, true
	}
	return "", 0, false
}

// Entry decodes a change event back into the audit entry it was made from.
func (Codec) Entry(key, value []byte) (*products.AuditEntry, error) {
	if a, ok := entryFast(key, value); ok {
		return a, nil
	}
	return entryJSON(key, value)
}

// entryJSON is Entry through encoding/json: any event, checked fully.
func entryJSON(key, value []byte) (*products.AuditEntry, error) {
	var env Envelope
	if err := json.Unmarshal(value, &env); err != nil {
		return nil, fmt.Errorf("decode envelope: %w", err)
	}
	var k Key
	if err := json.Unmarshal(key, &k); err != nil {
		return nil, fmt.Errorf("decode key: %w", err)
	}
	a, ok := newEntry(env.Source.Sequence, env.Source.DB, env.Source.Entity, k.ID, env.Op, env.Actor, env.RequestID, env.TsUs, env.Before, env.After)
	if !ok {
		return nil, fmt.Errorf("not a meshgate change event (op %q, db %q, sequence %d)", env.Op, env.Source.DB, env.Source.Sequence)
	}
	return a, nil
}

// newEntry makes the audit entry of a decoded event; false if it is not
// a meshgate change event (no known op, no product, no position).
func newEntry(seq int64, product, entity string, key int64, op, actor, requestID string, tsUs int64, before, after []byte) (*products.AuditEntry, bool) {
	a := &products.AuditEntry{
		Sequence: seq, Product: product, Entity: entity, Key: key,
		Actor: actor, RequestID: requestID, At: time.UnixMicro(tsUs).UTC(),
	}
	for o, code := range debeziumOps {
		if code == op {
			a.Op = o
		}
	}
	if a.Op == "" || a.Product == "" || a.Sequence <= 0 {
		return nil, false
	}
	a.Before, a.After = image(before), image(after)
	return a, true
}

// image is an event's before or after image: nil when absent or null.
func image(raw []byte) *string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	s := string(raw)
	return &s
}
