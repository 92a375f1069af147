package resolvers

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/meshgate/meshgate/products"
)

// Sharing a subscription event's response between subscribers (see web's
// shareGroup) is safe only when every subscriber would have computed the
// same bytes. The transport keys what it shares by the operation (its
// document, operation name, variables) and by the caller's rights
// (CallerShareKey); PerResponse tells it, through a ShareCheck, about what
// must happen per subscriber and so cannot be shared.

// CallerShareKey returns what of the caller in ctx decides what a
// subscription event's response holds for it: the roles it holds (sorted)
// and whether it is the dev identity. Field checks and masking depend on
// nothing else (access.need, Authorize). Row policies depend on the
// caller's subject and claims besides: with any policy configured ok is
// false and nothing is shared.
func (r *Resolver) CallerShareKey(ctx context.Context) (key string, ok bool) {
	if !r.Policies.Empty() {
		return "", false
	}
	id := products.IdentityFrom(ctx)
	if id == nil {
		return "anonymous", true
	}
	roles := slices.Clone(id.Roles)
	slices.Sort(roles)
	roles = slices.Compact(roles)
	var b strings.Builder
	b.WriteString("dev=")
	b.WriteString(strconv.FormatBool(id.Dev))
	for _, role := range roles {
		// Quoted: no role can pass for two.
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(role))
	}
	return b.String(), true
}

// ShareCheck learns, while one response is computed, whether something in
// it must happen per subscriber: personal data returned unmasked must be
// recorded in each subscriber's read audit, so such a response is not
// shared.
type ShareCheck struct {
	personal bool
}

type shareCheckKey struct{}

// WithShareCheck makes the response computed in ctx report to c.
func WithShareCheck(ctx context.Context, c *ShareCheck) context.Context {
	return context.WithValue(ctx, shareCheckKey{}, c)
}

// Shareable tells whether nothing in the response must happen per
// subscriber.
func (c *ShareCheck) Shareable() bool { return !c.personal }

// unshareable marks the response computed in ctx as not shareable.
func unshareable(ctx context.Context) {
	if c, _ := ctx.Value(shareCheckKey{}).(*ShareCheck); c != nil {
		c.personal = true
	}
}
