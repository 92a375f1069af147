package resolvers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
)

// TestWithheldReadIsRetryableWhenTheStoreIsDown: a response withheld
// because its read record could not be written is UNAVAILABLE (retryable)
// when the store is unreachable — a restart, as TestFaultPostgresRestart
// drives it — and an internal error otherwise.
func TestWithheldReadIsRetryableWhenTheStoreIsDown(t *testing.T) {
	r := &Resolver{}
	down := fmt.Errorf("customers: record reads: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	resp := r.withheld(context.Background(), down)
	if len(resp.Errors) != 1 || resp.Data != nil {
		t.Fatalf("withheld answer: %+v", resp)
	}
	ext := resp.Errors[0].Extensions
	if ext["code"] != "UNAVAILABLE" || ext["retryable"] != true || ext["retryAfter"] == nil {
		t.Fatalf("store down: extensions %v, want UNAVAILABLE, retryable, retryAfter", ext)
	}
	resp = r.withheld(context.Background(), errors.New("customers: record reads: no such table: mg_pii_reads"))
	if code := resp.Errors[0].Extensions["code"]; code != "INTERNAL_SERVER_ERROR" {
		t.Fatalf("other failure: code %v, want INTERNAL_SERVER_ERROR", code)
	}
}
