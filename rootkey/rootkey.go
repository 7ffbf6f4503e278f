// Package rootkey re-wraps every secret sealed with the root keyring under
// its primary key: the database half of `gatehouse rotate-root-key`.
//
// Envelope encryption (package secret) makes this cheap and safe: each
// sealed value carries its own data key wrapped by a named root key, so a
// rotation re-wraps 60 bytes per row and leaves the ciphertext and its aad
// binding untouched. Rows are visited in batches by primary key, each batch
// in its own short transaction, and every update is a compare-and-swap on
// the sealed bytes, so a serving replica that writes the same row meanwhile
// wins (its write is sealed under the primary already, or is re-wrapped by
// the next pass).
package rootkey

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-sso/gatehouse/secret"
)

// Column is one database column that holds values sealed with the root
// keyring. The aad of each value is its row's id (see the Seal calls).
type Column struct {
	Table, ID, Sealed string
}

// Columns lists every sealed column. TestEveryBinaryColumnIsKnown fails
// when a migration adds a binary column that is neither here nor a known
// digest, so a new kind of secret cannot be forgotten by rotation.
var Columns = []Column{
	{"connections", "id", "secrets"},      // IdP client secrets, SAML SP keys (api, console)
	{"signing_keys", "id", "private_key"}, // tenants' token-signing keys (op.RotateKeys)
	{"webhooks", "id", "secret"},          // webhook signing secrets (api)
	{"webhooks", "id", "previous_secret"}, // the secret before its last rotation, still signing for a while
}

// DigestColumns are binary columns holding one-way digests, which a root
// key rotation does not touch.
var DigestColumns = []Column{
	{"apps", "id", "secret_hash"},
	{"api_tokens", "id", "hash"},
	{"scim_tokens", "id", "hash"},
	{"op_auth_requests", "id", "code_hash"},
	{"op_refresh_tokens", "id", "hash"},
}

// Census counts the sealed values of every column by the root key id each
// names ("?" for a value that is not a sealed envelope).
func Census(ctx context.Context, db *sql.DB) (map[string]int, error) {
	out := map[string]int{}
	for _, c := range Columns {
		rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s IS NOT NULL", c.Sealed, c.Table, c.Sealed))
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", c.Table, c.Sealed, err)
		}
		for rows.Next() {
			var box []byte
			if err := rows.Scan(&box); err != nil {
				rows.Close()
				return nil, err
			}
			if len(box) == 0 {
				continue
			}
			kid, err := secret.KeyID(box)
			if err != nil {
				kid = "?"
			}
			out[kid]++
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Result says what Rewrap did.
type Result struct {
	Scanned   int
	Rewrapped int
	// Changed counts rows a concurrent writer changed between our read and
	// our write; they were left as written (run again to re-check).
	Changed int
}

// Rewrap re-wraps every sealed value that does not name k's primary key,
// batch rows at a time (default 500). It stops at the first error; what it
// did until then stays done, and running it again resumes.
func Rewrap(ctx context.Context, db *sql.DB, k *secret.Keyring, batch int) (Result, error) {
	if batch <= 0 {
		batch = 500
	}
	var res Result
	primary := k.Primary()
	for _, c := range Columns {
		after := ""
		for {
			rows, err := page(ctx, db, c, after, batch)
			if err != nil {
				return res, err
			}
			if len(rows) == 0 {
				break
			}
			after = rows[len(rows)-1].id
			res.Scanned += len(rows)
			if err := rewrapBatch(ctx, db, k, primary, c, rows, &res); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

type sealedRow struct {
	id  string
	box []byte
}

func page(ctx context.Context, db *sql.DB, c Column, after string, n int) ([]sealedRow, error) {
	q := fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s > $1 AND %s IS NOT NULL ORDER BY %s LIMIT $2", c.ID, c.Sealed, c.Table, c.ID, c.Sealed, c.ID)
	rows, err := db.QueryContext(ctx, q, after, n)
	if err != nil {
		return nil, fmt.Errorf("%s.%s: %w", c.Table, c.Sealed, err)
	}
	defer rows.Close()
	var out []sealedRow
	for rows.Next() {
		var r sealedRow
		if err := rows.Scan(&r.id, &r.box); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// rewrapBatch writes one batch in one transaction; each row only when it
// still holds the bytes read (compare-and-swap).
func rewrapBatch(ctx context.Context, db *sql.DB, k *secret.Keyring, primary string, c Column, rows []sealedRow, res *Result) error {
	type upd struct {
		id       string
		old, new []byte
	}
	var todo []upd
	for _, r := range rows {
		if len(r.box) == 0 {
			continue
		}
		kid, err := secret.KeyID(r.box)
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.Table, r.id, err)
		}
		if kid == primary {
			continue
		}
		nb, err := k.Rewrap(r.box)
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.Table, r.id, err)
		}
		if bytes.Equal(nb, r.box) {
			continue
		}
		todo = append(todo, upd{r.id, r.box, nb})
	}
	if len(todo) == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	q := fmt.Sprintf("UPDATE %s SET %s = $1 WHERE %s = $2 AND %s = $3", c.Table, c.Sealed, c.ID, c.Sealed)
	for _, u := range todo {
		r, err := tx.ExecContext(ctx, q, u.new, u.id, u.old)
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.Table, u.id, err)
		}
		if n, _ := r.RowsAffected(); n == 1 {
			res.Rewrapped++
		} else {
			res.Changed++
		}
	}
	return tx.Commit()
}

// Others returns the key ids in census other than primary, sorted.
func Others(census map[string]int, primary string) []string {
	var out []string
	for kid, n := range census {
		if kid != primary && n > 0 {
			out = append(out, kid)
		}
	}
	sort.Strings(out)
	return out
}

// Options for Rotate and Retire.
type Options struct {
	// KeyFile is the root key file every serving process reads.
	KeyFile string
	// Wait is how long serving processes get to reload the key file after
	// each change: at least secret.KeyFilePollInterval, plus the time the
	// file takes to reach other hosts. Zero waits not at all (one process).
	Wait time.Duration
	// Batch is the number of rows per transaction (default 500).
	Batch int
	// Out receives progress lines for the operator.
	Out io.Writer
}

func (o *Options) defaults() {
	if o.Out == nil {
		o.Out = io.Discard
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Rotate adds a new root key to the key file, waits for serving processes
// to load it, makes it primary, waits again (so no process seals with a
// key another cannot open), then re-wraps every sealed secret under it. The
// old key stays in the file, so anything a lagging process seals with it
// still opens; Retire removes it. It returns the new key id.
func Rotate(ctx context.Context, db *sql.DB, o Options) (string, error) {
	o.defaults()
	kid, err := secret.AddKeyToFile(o.KeyFile)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(o.Out, "added root key %s to %s; waiting %s for serving processes to load it\n", kid, o.KeyFile, o.Wait)
	if err := sleep(ctx, o.Wait); err != nil {
		return kid, err
	}
	if err := secret.SetKeyFilePrimary(o.KeyFile, kid); err != nil {
		return kid, err
	}
	fmt.Fprintf(o.Out, "root key %s is primary; waiting %s before re-wrapping\n", kid, o.Wait)
	if err := sleep(ctx, o.Wait); err != nil {
		return kid, err
	}
	_, err = rewrapAndCount(ctx, db, o)
	return kid, err
}

// Retire re-wraps whatever still names an old key, checks that every sealed
// secret names the primary key, and only then removes the other keys from
// the key file. It refuses (and changes no key) while any secret names an
// old key.
func Retire(ctx context.Context, db *sql.DB, o Options) ([]string, error) {
	o.defaults()
	census, err := rewrapAndCount(ctx, db, o)
	if err != nil {
		return nil, err
	}
	info, err := secret.ReadKeyFileInfo(o.KeyFile)
	if err != nil {
		return nil, err
	}
	if left := Others(census, info.Primary); len(left) > 0 {
		return nil, fmt.Errorf("secrets still name root key(s) %s (a serving process may not have loaded the key file yet); nothing retired: run again", strings.Join(left, ", "))
	}
	gone, err := secret.RetireKeysFromFile(o.KeyFile)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "retired root key(s): %s\n", strings.Join(gone, ", "))
	return gone, nil
}

// rewrapAndCount re-wraps under the key file's primary key and reports the
// census that follows.
func rewrapAndCount(ctx context.Context, db *sql.DB, o Options) (map[string]int, error) {
	k, _, err := secret.LoadOrCreateKeyring(o.KeyFile)
	if err != nil {
		return nil, err
	}
	res, err := Rewrap(ctx, db, k, o.Batch)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "re-wrapped %d of %d sealed secrets under %s (%d changed meanwhile by a serving process)\n", res.Rewrapped, res.Scanned, k.Primary(), res.Changed)
	census, err := Census(ctx, db)
	if err != nil {
		return nil, err
	}
	kids := make([]string, 0, len(census))
	for kid := range census {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	for _, kid := range kids {
		fmt.Fprintf(o.Out, "  %s: %d\n", kid, census[kid])
	}
	return census, nil
}
