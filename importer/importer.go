// Package importer is the client side of bulk user import (`gatehouse
// import users.csv|users.json`): it reads CSV or JSON, checks every row,
// and sends the rows to the admin API's POST .../users/import in chunks.
//
// Nothing is written when any row is bad: syntax and duplicates are
// checked locally over the whole file, then every chunk is validated by
// the server (dry run) against the tenant, and only when all pass are the
// chunks sent for real, each in one transaction. Importing the same file
// again changes nothing (users are matched by email).
package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-sso/gatehouse/apiclient"
)

// Row is one user, as the API's ImportRow.
type Row struct {
	Line        int       `json:"line"`
	Email       string    `json:"email"`
	Username    *string   `json:"username,omitempty"`
	DisplayName *string   `json:"display_name,omitempty"`
	GivenName   *string   `json:"given_name,omitempty"`
	FamilyName  *string   `json:"family_name,omitempty"`
	ExternalID  *string   `json:"external_id,omitempty"`
	Status      *string   `json:"status,omitempty"`
	Groups      *[]string `json:"groups,omitempty"`
}

// RowError is a bad row.
type RowError struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e RowError) String() string {
	if e.Field != "" {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Message)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Message)
}

// InvalidError lists every bad row; nothing was written.
type InvalidError struct{ Rows []RowError }

func (e *InvalidError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad row(s); nothing was written:", len(e.Rows))
	for i, r := range e.Rows {
		if i == 50 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Rows)-50)
			break
		}
		b.WriteString("\n  " + r.String())
	}
	return b.String()
}

// Columns are the CSV header names (and JSON keys) a file may use.
var Columns = []string{"email", "username", "display_name", "given_name", "family_name", "external_id", "status", "groups"}

// GroupSeparator separates group names in a CSV cell.
const GroupSeparator = ";"

// ReadFile reads path as CSV or JSON by its extension (.json, else CSV).
func ReadFile(path string) ([]Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if strings.EqualFold(filepath.Ext(path), ".json") {
		return ReadJSON(f)
	}
	return ReadCSV(f)
}

// ReadCSV reads a CSV file with a header line naming its columns. An
// empty cell leaves the field as stored, except groups, where an empty
// cell means "no import-managed groups".
func ReadCSV(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = false
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("line 1: the header line is missing or unreadable: %w", err)
	}
	idx := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(Columns, h) {
			return nil, fmt.Errorf("line 1: unknown column %q (columns: %s)", h, strings.Join(Columns, ", "))
		}
		if _, dup := idx[h]; dup {
			return nil, fmt.Errorf("line 1: column %q appears twice", h)
		}
		idx[h] = i
	}
	if _, ok := idx["email"]; !ok {
		return nil, fmt.Errorf("line 1: the email column is required")
	}
	var rows []Row
	var bad []RowError
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				bad = append(bad, RowError{Line: pe.Line, Message: pe.Err.Error()})
				if errors.Is(pe.Err, csv.ErrFieldCount) {
					continue
				}
			}
			return nil, &InvalidError{Rows: append(bad, RowError{Line: line, Message: err.Error()})}
		}
		row := Row{Line: line}
		cell := func(name string) *string {
			i, ok := idx[name]
			if !ok {
				return nil
			}
			v := strings.TrimSpace(rec[i])
			if v == "" && name != "groups" {
				return nil
			}
			return &v
		}
		if e := cell("email"); e != nil {
			row.Email = *e
		}
		row.Username, row.DisplayName, row.GivenName = cell("username"), cell("display_name"), cell("given_name")
		row.FamilyName, row.ExternalID, row.Status = cell("family_name"), cell("external_id"), cell("status")
		if g := cell("groups"); g != nil {
			row.Groups = splitGroups(*g)
		}
		rows = append(rows, row)
	}
	if len(bad) > 0 {
		return nil, &InvalidError{Rows: bad}
	}
	return rows, nil
}

func splitGroups(cell string) *[]string {
	out := []string{}
	for _, g := range strings.Split(cell, GroupSeparator) {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return &out
}

// ReadJSON reads a JSON array of objects with the Columns as keys (groups
// a list); each row's line is where its object starts.
func ReadJSON(r io.Reader) ([]Row, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	lineAt := func(off int64) int { return 1 + bytes.Count(data[:min(off, int64(len(data)))], []byte{'\n'}) }
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, fmt.Errorf("line 1: a JSON import is an array of user objects")
	}
	var rows []Row
	var bad []RowError
	for dec.More() {
		// InputOffset is the end of the last token; the object starts
		// after any whitespace and comma.
		off := dec.InputOffset()
		for off < int64(len(data)) && strings.ContainsRune(" \t\r\n,", rune(data[off])) {
			off++
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &InvalidError{Rows: append(bad, RowError{Line: lineAt(off), Message: "malformed JSON: " + err.Error()})}
		}
		var row Row
		od := json.NewDecoder(bytes.NewReader(raw))
		od.DisallowUnknownFields()
		if err := od.Decode(&row); err != nil {
			bad = append(bad, RowError{Line: lineAt(off), Message: strings.TrimPrefix(err.Error(), "json: ")})
			continue
		}
		row.Line = lineAt(off)
		rows = append(rows, row)
	}
	if len(bad) > 0 {
		return nil, &InvalidError{Rows: bad}
	}
	return rows, nil
}

// checkLocal finds what needs the whole file: a missing email, the same
// email or username on two lines (chunks are checked apart on the server).
func checkLocal(rows []Row) []RowError {
	var bad []RowError
	emails, names := map[string]int{}, map[string]int{}
	for _, r := range rows {
		if strings.TrimSpace(r.Email) == "" {
			bad = append(bad, RowError{Line: r.Line, Field: "email", Message: "email is required."})
			continue
		}
		k := strings.ToLower(strings.TrimSpace(r.Email))
		if first, ok := emails[k]; ok {
			bad = append(bad, RowError{Line: r.Line, Field: "email", Message: fmt.Sprintf("%s is also on line %d.", r.Email, first)})
		} else {
			emails[k] = r.Line
		}
		if r.Username != nil {
			k := strings.ToLower(strings.TrimSpace(*r.Username))
			if first, ok := names[k]; ok {
				bad = append(bad, RowError{Line: r.Line, Field: "username", Message: fmt.Sprintf("Username %s is also on line %d.", *r.Username, first)})
			} else {
				names[k] = r.Line
			}
		}
	}
	return bad
}

// Options tunes Import.
type Options struct {
	// Chunk is how many rows go in one request [1000].
	Chunk int
	// DryRun checks everything and writes nothing.
	DryRun bool
	// Progress, when set, receives a progress bar (for a terminal).
	Progress io.Writer
	// Parallel is how many chunks are in flight at once [4]. PostgreSQL
	// runs them side by side; SQLite queues them on its one writer.
	Parallel int
}

// Result sums the chunks' answers.
type Result struct {
	Created       int           `json:"created"`
	Updated       int           `json:"updated"`
	Unchanged     int           `json:"unchanged"`
	GroupsCreated int           `json:"groups_created"`
	Rows          int           `json:"rows"`
	Elapsed       time.Duration `json:"elapsed_ns"`
}

type apiResult struct {
	Created       int        `json:"created"`
	Updated       int        `json:"updated"`
	Unchanged     int        `json:"unchanged"`
	GroupsCreated int        `json:"groups_created"`
	Errors        []RowError `json:"errors"`
}

// Import sends rows to tenant. Bad rows give an *InvalidError and nothing
// is written.
func Import(ctx context.Context, c *apiclient.Client, tenant string, rows []Row, o Options) (*Result, error) {
	start := time.Now()
	if o.Chunk <= 0 {
		o.Chunk = 1000
	}
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if bad := checkLocal(rows); len(bad) > 0 {
		return nil, &InvalidError{Rows: bad}
	}
	path := apiclient.TenantPath(tenant, "users", "import")
	chunks := chunk(rows, o.Chunk, maxChunkBytes)
	bar := newBar(o.Progress, len(rows))
	var mu sync.Mutex // guards sums, errors and the bar
	// send answers the chunk's row errors as an *InvalidError.
	send := func(chunk []Row, dry bool) (*apiResult, error) {
		var out apiResult
		err := c.Do(ctx, "POST", path, map[string]any{"rows": chunk, "dry_run": dry}, &out)
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Status == 400 && ae.Field == "rows" {
			var body struct {
				Rows []RowError `json:"rows"`
			}
			if json.Unmarshal(ae.Body, &body) == nil && len(body.Rows) > 0 {
				return nil, &InvalidError{Rows: body.Rows}
			}
		}
		return &out, err
	}
	// One chunk is one transaction: validation and writes together. More
	// need a validation pass first, so a bad row in the last chunk stops
	// the import before the first is written.
	if len(chunks) > 1 || o.DryRun {
		var bad []RowError
		sum := &Result{}
		err := eachChunk(chunks, o.Parallel, func(ch []Row) error {
			out, err := send(ch, true)
			mu.Lock()
			defer mu.Unlock()
			var inv *InvalidError
			if errors.As(err, &inv) {
				bad = append(bad, inv.Rows...)
				return nil
			}
			if err != nil {
				return err
			}
			sum.add(out)
			bar.step(len(ch), "checked")
			return nil
		})
		if err != nil {
			return nil, err
		}
		slices.SortFunc(bad, func(a, b RowError) int { return a.Line - b.Line })
		if len(bad) > 0 {
			bar.done()
			return nil, &InvalidError{Rows: bad}
		}
		if o.DryRun {
			bar.done()
			sum.Rows, sum.Elapsed = len(rows), time.Since(start)
			return sum, nil
		}
		bar.reset()
	}
	sum := &Result{Rows: len(rows)}
	if len(chunks) > 1 {
		// Validated: groups first, so chunks in flight together do not
		// race to create the same group. (One chunk creates its groups
		// in its own transaction.)
		made, err := ensureGroups(ctx, c, tenant, rows)
		if err != nil {
			return nil, err
		}
		sum.GroupsCreated = made
	}
	err := eachChunk(chunks, o.Parallel, func(ch []Row) error {
		var out *apiResult
		var err error
		for attempt := 1; attempt <= 3; attempt++ {
			// A conflict means a concurrent chunk took a username this
			// one derived at the same moment: the chunk rolled back and
			// is sent again (importing is idempotent).
			out, err = send(ch, false)
			var ae *apiclient.Error
			if !errors.As(err, &ae) || ae.Status != 409 {
				break
			}
		}
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		sum.add(out)
		bar.step(len(ch), "imported")
		return nil
	})
	if err != nil {
		return nil, err
	}
	bar.done()
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// maxChunkBytes keeps a request under the API's body limit (1 MiB) with
// room for the envelope.
const maxChunkBytes = 900 << 10

// chunk splits rows into runs of at most n rows and about maxBytes of JSON.
func chunk(rows []Row, n, maxBytes int) [][]Row {
	var out [][]Row
	start, size := 0, 0
	for i, r := range rows {
		b, _ := json.Marshal(r)
		if i > start && (i-start == n || size+len(b)+1 > maxBytes) {
			out = append(out, rows[start:i])
			start, size = i, 0
		}
		size += len(b) + 1
	}
	if start < len(rows) {
		out = append(out, rows[start:])
	}
	return out
}

// eachChunk runs fn over the chunks, parallel at a time; the first error
// stops the rest.
func eachChunk(chunks [][]Row, parallel int, fn func([]Row) error) error {
	var g errgroup
	sem := make(chan struct{}, parallel)
	for _, ch := range chunks {
		sem <- struct{}{}
		if g.failed() {
			<-sem
			break
		}
		g.goRun(func() error {
			defer func() { <-sem }()
			return fn(ch)
		})
	}
	return g.wait()
}

// errgroup is a WaitGroup that keeps the first error.
type errgroup struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (g *errgroup) goRun(fn func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := fn(); err != nil {
			g.mu.Lock()
			if g.err == nil {
				g.err = err
			}
			g.mu.Unlock()
		}
	}()
}

func (g *errgroup) failed() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.err != nil }

func (g *errgroup) wait() error { g.wg.Wait(); return g.err }

// ensureGroups creates the groups the rows name that the tenant lacks and
// returns how many it created.
func ensureGroups(ctx context.Context, c *apiclient.Client, tenant string, rows []Row) (int, error) {
	want := map[string]string{}
	for _, r := range rows {
		if r.Groups != nil {
			for _, g := range *r.Groups {
				want[strings.ToLower(g)] = g
			}
		}
	}
	if len(want) == 0 {
		return 0, nil
	}
	have, err := apiclient.List[struct {
		Name string `json:"name"`
	}](ctx, c, apiclient.TenantPath(tenant, "groups"))
	if err != nil {
		return 0, err
	}
	for _, g := range have {
		delete(want, strings.ToLower(g.Name))
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if err := c.Do(ctx, "POST", apiclient.TenantPath(tenant, "groups"), map[string]any{"name": want[k]}, nil); err != nil {
			return 0, fmt.Errorf("creating group %s: %w", want[k], err)
		}
	}
	return len(want), nil
}

func (r *Result) add(a *apiResult) {
	r.Created += a.Created
	r.Updated += a.Updated
	r.Unchanged += a.Unchanged
	r.GroupsCreated += a.GroupsCreated
}
