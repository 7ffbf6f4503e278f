package storetest

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/gatehouse-sso/gatehouse"
)

// jsonEqual compares JSON documents by value: PostgreSQL may re-space them.
func jsonEqual(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return diff(x, y) == ""
}

func checkConnection(t *testing.T, what string, want, got *gatehouse.Connection) {
	t.Helper()
	if !jsonEqual(want.Config, got.Config) || !jsonEqual(want.State, got.State) {
		t.Errorf("%s: config/state %s %s, want %s %s", what, got.Config, got.State, want.Config, want.State)
	}
	w, g := *want, *got
	w.Config, w.State, g.Config, g.State = nil, nil, nil, nil
	check(t, what, &w, &g)
}

func testConnections(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	domains := []string{}
	c := &gatehouse.Connection{TenantID: te.ID, Type: gatehouse.ConnSAML, Name: "Okta", Enabled: true,
		Config:  json.RawMessage(`{"metadata_url": "https://acme.okta.com/app/x/sso/saml/metadata"}`),
		Secrets: []byte{0, 1, 2, 255},
		JIT: gatehouse.JITPolicy{Enabled: true, AllowedDomains: &domains, DefaultGroups: []string{"Everyone"},
			GroupSync: gatehouse.GroupSync{Enabled: true, Mapping: map[string]string{"okta-eng": "Engineering"}}},
		Mapping: gatehouse.AttributeMapping{Email: "mail", Expressions: map[string]string{"username": "claims.login"}},
	}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateConnection(ctx, c) })
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetConnection(ctx, te.ID, c.ID)
		if err != nil {
			return err
		}
		checkConnection(t, "GetConnection", c, got)
		if got.JIT.AllowedDomains == nil {
			t.Errorf("AllowedDomains: an empty list came back as nil (nil means the tenant's domains)")
		}
		got, err = tx.GetConnectionByID(ctx, c.ID)
		if err != nil {
			return err
		}
		checkConnection(t, "GetConnectionByID", c, got)
		list, err := tx.ListConnections(ctx, te.ID)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			t.Fatalf("ListConnections = %d connections", len(list))
		}
		checkConnection(t, "ListConnections", c, list[0])
		return nil
	})
	c.Enabled, c.Name, c.State, c.Secrets = false, "Okta (old)", json.RawMessage(`{"cert_not_after":"2027-01-01T00:00:00Z"}`), nil
	c.JIT.AllowedDomains = nil
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateConnection(ctx, c) })
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetConnection(ctx, te.ID, c.ID)
		if err != nil {
			return err
		}
		checkConnection(t, "after UpdateConnection", c, got)
		if got.JIT.AllowedDomains != nil {
			t.Errorf("AllowedDomains nil came back as %v", *got.JIT.AllowedDomains)
		}
		return nil
	})
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.UpdateConnection(ctx, &gatehouse.Connection{TenantID: te.ID, ID: "con_missing", Type: gatehouse.ConnOIDC})
	})
	wantCode(t, "UpdateConnection(missing)", err, gatehouse.ENOTFOUND, "")
}

func testDeleteConnection(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	ana := newUser(t, s, te.ID, "ana@acme.com")
	okta := newConnection(t, s, te.ID, "okta")
	google := newConnection(t, s, te.ID, "google")
	link(t, s, ana, okta, "okta-ana")
	link(t, s, ana, google, "google-ana")
	viaOkta := newSession(t, s, ana, okta.ID)
	viaGoogle := newSession(t, s, ana, google.ID)

	update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteConnection(ctx, te.ID, okta.ID) })
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetConnection(ctx, te.ID, okta.ID)
		wantCode(t, "GetConnection(deleted)", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetIdentity(ctx, te.ID, okta.ID, "okta-ana")
		wantCode(t, "identity of a deleted connection", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetSession(ctx, viaOkta.ID)
		wantCode(t, "session through a deleted connection", err, gatehouse.ENOTFOUND, "")
		if _, err := tx.GetSession(ctx, viaGoogle.ID); err != nil {
			t.Errorf("session through another connection: %v", err)
		}
		if _, err := tx.GetIdentity(ctx, te.ID, google.ID, "google-ana"); err != nil {
			t.Errorf("identity at another connection: %v", err)
		}
		if _, err := tx.GetUser(ctx, te.ID, ana.ID); err != nil {
			t.Errorf("the user went with the connection: %v", err)
		}
		return nil
	})
	err := tryUpdate(s, func(tx gatehouse.Tx) error { return tx.DeleteConnection(ctx, te.ID, okta.ID) })
	wantCode(t, "DeleteConnection twice", err, gatehouse.ENOTFOUND, "")
}

func testApps(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	other := newTenant(t, s, "globex")
	a := &gatehouse.App{TenantID: te.ID, Name: "Wiki", ClientID: "wiki", SecretHash: []byte("digest"),
		RedirectURIs: []string{"https://wiki.acme.com/cb"}, PostLogoutRedirectURIs: []string{"https://wiki.acme.com/"},
		AllowedConnections: []string{"con_1"}, AllowedGroups: []string{"Everyone"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		IDTokenSigningAlg: "RS256", BackchannelLogoutURI: "https://wiki.acme.com/bcl", AccessTokenTTL: 300, RefreshTokenTTL: 86400}
	update(t, s, func(tx gatehouse.Tx) error { return tx.CreateApp(ctx, a) })
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateApp(ctx, &gatehouse.App{TenantID: te.ID, Name: "Wiki 2", ClientID: "wiki", Public: true})
	})
	wantCode(t, "client_id taken", err, gatehouse.ECONFLICT, "client_id")
	update(t, s, func(tx gatehouse.Tx) error {
		return tx.CreateApp(ctx, &gatehouse.App{TenantID: other.ID, Name: "Wiki", ClientID: "wiki"})
	})
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetApp(ctx, te.ID, a.ID)
		if err != nil {
			return err
		}
		check(t, "GetApp", a, got)
		got, err = tx.GetAppByClientID(ctx, te.ID, "wiki")
		if err != nil {
			return err
		}
		check(t, "GetAppByClientID", a, got)
		list, err := tx.ListApps(ctx, te.ID)
		if err != nil {
			return err
		}
		check(t, "ListApps", []*gatehouse.App{a}, list)
		return nil
	})
	a.Public, a.SecretHash, a.RedirectURIs = true, nil, []string{"http://127.0.0.1/cb"}
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateApp(ctx, a) })
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetApp(ctx, te.ID, a.ID)
		if err != nil {
			return err
		}
		check(t, "after UpdateApp", a, got)
		return nil
	})
	update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteApp(ctx, te.ID, a.ID) })
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.DeleteApp(ctx, te.ID, a.ID) })
	wantCode(t, "DeleteApp twice", err, gatehouse.ENOTFOUND, "")
}

func testTokens(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	c := newConnection(t, s, te.ID, "okta")
	at := &gatehouse.APIToken{TenantID: te.ID, Name: "ci", Role: gatehouse.RoleTenantAdmin, Hash: []byte("api-digest")}
	st := &gatehouse.SCIMToken{TenantID: te.ID, Name: "okta", ConnectionID: c.ID, Hash: []byte("scim-digest")}
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.CreateAPIToken(ctx, at); err != nil {
			return err
		}
		return tx.CreateSCIMToken(ctx, st)
	})
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateAPIToken(ctx, &gatehouse.APIToken{TenantID: te.ID, Name: "dup", Role: gatehouse.RoleTenantViewer, Hash: []byte("api-digest")})
	})
	wantCode(t, "API token digest taken", err, gatehouse.ECONFLICT, "hash")
	err = tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateSCIMToken(ctx, &gatehouse.SCIMToken{TenantID: te.ID, Name: "dup", Hash: []byte("scim-digest")})
	})
	wantCode(t, "SCIM token digest taken", err, gatehouse.ECONFLICT, "hash")
	used := time.Now().Add(-time.Minute)
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.TouchAPIToken(ctx, at.ID, used); err != nil {
			return err
		}
		return tx.TouchSCIMToken(ctx, st.ID, used)
	})
	usedAt := used.Truncate(time.Microsecond).UTC()
	at.LastUsedAt, st.LastUsedAt = &usedAt, &usedAt
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetAPITokenByHash(ctx, []byte("api-digest"))
		if err != nil {
			return err
		}
		check(t, "GetAPITokenByHash", at, got)
		_, err = tx.GetAPITokenByHash(ctx, []byte("other"))
		wantCode(t, "GetAPITokenByHash(unknown)", err, gatehouse.ENOTFOUND, "")
		list, err := tx.ListAPITokens(ctx, te.ID)
		if err != nil {
			return err
		}
		check(t, "ListAPITokens", []*gatehouse.APIToken{at}, list)
		sgot, err := tx.GetSCIMTokenByHash(ctx, []byte("scim-digest"))
		if err != nil {
			return err
		}
		check(t, "GetSCIMTokenByHash", st, sgot)
		slist, err := tx.ListSCIMTokens(ctx, te.ID)
		if err != nil {
			return err
		}
		check(t, "ListSCIMTokens", []*gatehouse.SCIMToken{st}, slist)
		return nil
	})
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.DeleteAPIToken(ctx, te.ID, at.ID); err != nil {
			return err
		}
		return tx.DeleteSCIMToken(ctx, te.ID, st.ID)
	})
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetAPITokenByHash(ctx, []byte("api-digest"))
		wantCode(t, "deleted API token", err, gatehouse.ENOTFOUND, "")
		_, err = tx.GetSCIMTokenByHash(ctx, []byte("scim-digest"))
		wantCode(t, "deleted SCIM token", err, gatehouse.ENOTFOUND, "")
		return nil
	})
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.TouchAPIToken(ctx, at.ID, used) })
	wantCode(t, "TouchAPIToken(deleted)", err, gatehouse.ENOTFOUND, "")
}

func testSigningKeys(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	notAfter := time.Now().Add(90 * 24 * time.Hour).Truncate(time.Microsecond).UTC()
	k1 := &gatehouse.SigningKey{TenantID: te.ID, Alg: "RS256", Private: []byte("sealed-1"), PublicJWK: json.RawMessage(`{"kty":"RSA","kid":"1"}`), NotAfter: &notAfter}
	k2 := &gatehouse.SigningKey{TenantID: te.ID, Alg: "ES256", Private: []byte("sealed-2"), PublicJWK: json.RawMessage(`{"kty":"EC","kid":"2"}`)}
	update(t, s, func(tx gatehouse.Tx) error {
		if err := tx.CreateSigningKey(ctx, k1); err != nil {
			return err
		}
		return tx.CreateSigningKey(ctx, k2)
	})
	retired := time.Now().Truncate(time.Microsecond).UTC()
	k1.RetiredAt = &retired
	update(t, s, func(tx gatehouse.Tx) error { return tx.UpdateSigningKey(ctx, k1) })
	view(t, s, func(tx gatehouse.Tx) error {
		list, err := tx.ListSigningKeys(ctx, te.ID)
		if err != nil {
			return err
		}
		if len(list) != 2 {
			t.Fatalf("ListSigningKeys = %d keys", len(list))
		}
		for i, want := range []*gatehouse.SigningKey{k1, k2} {
			if !jsonEqual(want.PublicJWK, list[i].PublicJWK) {
				t.Errorf("key %d JWK %s, want %s", i, list[i].PublicJWK, want.PublicJWK)
			}
			w, g := *want, *list[i]
			w.PublicJWK, g.PublicJWK = nil, nil
			check(t, "signing key", &w, &g)
		}
		return nil
	})
	err := tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.UpdateSigningKey(ctx, &gatehouse.SigningKey{TenantID: te.ID, ID: "key_missing"})
	})
	wantCode(t, "UpdateSigningKey(missing)", err, gatehouse.ENOTFOUND, "")
}

func testSessions(t *testing.T, s gatehouse.Store) {
	te := newTenant(t, s, "acme")
	ana := newUser(t, s, te.ID, "ana@acme.com")
	bo := newUser(t, s, te.ID, "bo@acme.com")
	c := newConnection(t, s, te.ID, "okta")
	se := newSession(t, s, ana, c.ID)
	se.SessionIndex = ""
	newSession(t, s, ana, c.ID)
	keep := newSession(t, s, bo, "")
	dup := *se
	err := tryUpdate(s, func(tx gatehouse.Tx) error { return tx.CreateSession(ctx, &dup) })
	wantCode(t, "session ID taken", err, gatehouse.ECONFLICT, "id")
	err = tryUpdate(s, func(tx gatehouse.Tx) error {
		return tx.CreateSession(ctx, &gatehouse.Session{ID: "x", TenantID: te.ID, UserID: "usr_missing"})
	})
	wantCode(t, "session of a missing user", err, gatehouse.ENOTFOUND, "")
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetSession(ctx, se.ID)
		if err != nil {
			return err
		}
		check(t, "GetSession", se, got)
		return nil
	})
	seen := time.Now().Add(time.Minute).Truncate(time.Microsecond).UTC()
	idle := seen.Add(time.Hour)
	update(t, s, func(tx gatehouse.Tx) error { return tx.TouchSession(ctx, se.ID, seen, idle) })
	se.LastSeenAt, se.IdleExpiry = seen, idle
	view(t, s, func(tx gatehouse.Tx) error {
		got, err := tx.GetSession(ctx, se.ID)
		if err != nil {
			return err
		}
		check(t, "after TouchSession", se, got)
		return nil
	})
	var n int
	update(t, s, func(tx gatehouse.Tx) (err error) {
		n, err = tx.DeleteUserSessions(ctx, te.ID, ana.ID)
		return err
	})
	if n != 2 {
		t.Errorf("DeleteUserSessions = %d, want 2", n)
	}
	view(t, s, func(tx gatehouse.Tx) error {
		_, err := tx.GetSession(ctx, se.ID)
		wantCode(t, "GetSession(deleted)", err, gatehouse.ENOTFOUND, "")
		if _, err := tx.GetSession(ctx, keep.ID); err != nil {
			t.Errorf("another user's session: %v", err)
		}
		return nil
	})
	update(t, s, func(tx gatehouse.Tx) error { return tx.DeleteSession(ctx, keep.ID) })
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.DeleteSession(ctx, keep.ID) })
	wantCode(t, "DeleteSession twice", err, gatehouse.ENOTFOUND, "")
	err = tryUpdate(s, func(tx gatehouse.Tx) error { return tx.TouchSession(ctx, keep.ID, seen, idle) })
	wantCode(t, "TouchSession(deleted)", err, gatehouse.ENOTFOUND, "")
}
