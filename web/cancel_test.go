package web

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// A request the client cancelled is not an internal error: it gets the
// CANCELLED code and a debug line, not an ERROR in the logs; a cancellation
// the client did not cause (the request's context still live) stays
// internal.
func TestClientCancellationIsNotAnInternalError(t *testing.T) {
	var logs bytes.Buffer
	present := presentError(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})), time.Second)

	ctx, cancel := context.WithCancel(graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, nil))
	cancel()
	gerr := present(ctx, fmt.Errorf("select orders: %w", context.Canceled))
	if code := gerr.Extensions["code"]; code != "CANCELLED" {
		t.Fatalf("code %v, want CANCELLED (%s)", code, gerr.Message)
	}
	if logs.Len() != 0 {
		t.Fatalf("a client's cancellation was logged at info or above: %s", logs.String())
	}

	live := graphql.WithResponseContext(context.Background(), graphql.DefaultErrorPresenter, nil)
	gerr = present(live, fmt.Errorf("select orders: %w", context.Canceled))
	if code := gerr.Extensions["code"]; code != "INTERNAL_SERVER_ERROR" {
		t.Fatalf("code %v, want INTERNAL_SERVER_ERROR for a cancellation the client did not cause", code)
	}
	if !strings.Contains(logs.String(), "internal error") {
		t.Fatalf("an internal error was not logged: %q", logs.String())
	}
}
