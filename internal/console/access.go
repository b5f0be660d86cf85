package console

import (
	"context"

	"github.com/redis-manager/redis-manager/internal/auth"
	"github.com/redis-manager/redis-manager/internal/store"
)

// AccessStore is what StoreAccess reads: the store's users, tokens and
// audit log (store.Access has them).
type AccessStore interface {
	ListUsers(ctx context.Context) ([]store.User, error)
	ListTokens(ctx context.Context) ([]store.Token, error)
	ListAudit(ctx context.Context, limit int) ([]store.AuditEntry, error)
}

// StoreAccess is the console's Access over the store: the pages show no
// password hash and no token hash, so none leaves this adapter.
func StoreAccess(st AccessStore) Access { return storeAccess{st} }

type storeAccess struct{ st AccessStore }

func (a storeAccess) ListUsers(ctx context.Context) ([]User, error) {
	us, err := a.st.ListUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(us))
	for _, u := range us {
		out = append(out, User{Name: u.Name, Role: auth.Role(u.Role), CreatedAt: u.CreatedAt})
	}
	return out, nil
}

func (a storeAccess) ListTokens(ctx context.Context) ([]Token, error) {
	ts, err := a.st.ListTokens(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Token, 0, len(ts))
	for _, t := range ts {
		out = append(out, Token{Name: t.Name, Role: auth.Role(t.Role), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt})
	}
	return out, nil
}

func (a storeAccess) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	es, err := a.st.ListAudit(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]AuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, AuditEntry(e))
	}
	return out, nil
}
