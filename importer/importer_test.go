package importer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/apiclient"
	"github.com/gatehouse-sso/gatehouse/importer"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

func start(t *testing.T, engine string) (*servertest.Instance, *apiclient.Client) {
	gh := servertest.Start(t, servertest.Options{Engine: engine})
	if st := gh.API(t, "POST", "/api/v1/tenants", map[string]any{"slug": "acme"}, nil); st != 201 {
		t.Fatalf("tenant: %d", st)
	}
	return gh, apiclient.New(gh.URL, servertest.AdminToken)
}

func users(t *testing.T, gh *servertest.Instance) []*gatehouse.User {
	var us []*gatehouse.User
	ctx := context.Background()
	err := gh.Store.View(ctx, func(tx gatehouse.Tx) error {
		ten, err := tx.GetTenantBySlug(ctx, "acme")
		if err != nil {
			return err
		}
		us, _, err = tx.ListUsers(ctx, ten.ID, gatehouse.UserFilter{}, gatehouse.Page{Limit: 1000})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return us
}

const csvFile = `email,username,display_name,status,groups
ada@acme.example,ada,Ada Lovelace,,Engineering;Admins
"grace@acme.example",,"Hopper, Grace",active,Engineering
linus@acme.example,,,deactivated,
`

func TestImportCSVAndJSON(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			gh, c := start(t, engine)
			ctx := context.Background()
			rows, err := importer.ReadCSV(strings.NewReader(csvFile))
			if err != nil {
				t.Fatal(err)
			}
			if rows[1].Line != 3 || *rows[1].DisplayName != "Hopper, Grace" || len(*rows[0].Groups) != 2 {
				t.Fatalf("rows %+v", rows)
			}
			res, err := importer.Import(ctx, c, "acme", rows, importer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Created != 3 || res.GroupsCreated != 2 {
				t.Fatalf("first import %+v", res)
			}
			var eng struct {
				MemberCount int `json:"member_count"`
			}
			gh.API(t, "GET", "/api/v1/tenants/acme/groups/Engineering", nil, &eng)
			if eng.MemberCount != 2 {
				t.Errorf("Engineering has %d members", eng.MemberCount)
			}
			for _, u := range users(t, gh) {
				if u.Source != gatehouse.SourceImport || (u.Email == "linus@acme.example") != (u.Status == gatehouse.StatusDeactivated) {
					t.Errorf("user %s: source %s status %s", u.Email, u.Source, u.Status)
				}
			}
			// Again: nothing changes. Then JSON moves Ada out of Admins.
			if res, err := importer.Import(ctx, c, "acme", rows, importer.Options{}); err != nil || res.Unchanged != 3 || res.Created+res.Updated != 0 {
				t.Fatalf("second import %+v %v", res, err)
			}
			js := `[
  {"email": "ADA@acme.example", "groups": ["Engineering"]},
  {"email": "grace@acme.example", "display_name": "Grace Hopper"}
]`
			jrows, err := importer.ReadJSON(strings.NewReader(js))
			if err != nil || jrows[1].Line != 3 {
				t.Fatalf("json rows %+v %v", jrows, err)
			}
			if res, err := importer.Import(ctx, c, "acme", jrows, importer.Options{}); err != nil || res.Updated != 1 || res.Unchanged != 1 {
				t.Fatalf("json import %+v %v", res, err)
			}
			var admins struct {
				MemberCount int `json:"member_count"`
			}
			gh.API(t, "GET", "/api/v1/tenants/acme/groups/Admins", nil, &admins)
			if admins.MemberCount != 0 {
				t.Errorf("Admins still has %d members", admins.MemberCount)
			}
		})
	}
}

// TestImportBadRowsWriteNothing: bad rows anywhere in the file, found
// locally or by the server, are all reported by line and nothing is
// written, even when the file goes in several chunks.
func TestImportBadRowsWriteNothing(t *testing.T) {
	gh, c := start(t, "sqlite")
	ctx := context.Background()
	// A tombstone the server refuses to re-create.
	var u map[string]any
	gh.API(t, "POST", "/api/v1/tenants/acme/users", map[string]any{"email": "gone@acme.example"}, &u)
	gh.API(t, "DELETE", "/api/v1/tenants/acme/users/"+u["id"].(string), nil, nil)
	file := "email,status\nok1@acme.example,\nnot-an-email,\nok2@acme.example,\nok3@acme.example,paused\nok1@acme.example,\ngone@acme.example,\n"
	rows, err := importer.ReadCSV(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	_, err = importer.Import(ctx, c, "acme", rows, importer.Options{Chunk: 2})
	var inv *importer.InvalidError
	if !errors.As(err, &inv) || len(inv.Rows) != 1 || inv.Rows[0].Line != 6 {
		t.Fatalf("local check: %v", err)
	}
	rows = append(rows[:4], rows[5]) // drop the duplicate: the server finds the rest
	_, err = importer.Import(ctx, c, "acme", rows, importer.Options{Chunk: 2})
	if !errors.As(err, &inv) {
		t.Fatalf("server check: %v", err)
	}
	var lines []int
	for _, r := range inv.Rows {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[3 5 7]" || !strings.Contains(err.Error(), "line 7: email: A deleted user") {
		t.Fatalf("bad lines %v: %v", lines, err)
	}
	if n := len(users(t, gh)); n != 0 {
		t.Fatalf("%d users written", n)
	}
	if _, err := importer.ReadCSV(strings.NewReader("mail\nx@y.z\n")); err == nil || !strings.Contains(err.Error(), `unknown column "mail"`) {
		t.Fatalf("unknown column: %v", err)
	}
}

// TestImportThroughput imports 5,000 new users on SQLite and 1,000 on
// PostgreSQL (GATEHOUSE_IMPORT_ROWS=10000 sets both, for the full measure)
// through the API and reports rows per second.
func TestImportThroughput(t *testing.T) {
	for _, engine := range testdb.Engines {
		n := map[string]int{"sqlite": 5000, "postgres": 1000}[engine]
		if v, err := strconv.Atoi(os.Getenv("GATEHOUSE_IMPORT_ROWS")); err == nil {
			n = v
		}
		t.Run(engine, func(t *testing.T) {
			_, c := start(t, engine)
			var b bytes.Buffer
			b.WriteString("email,display_name,groups\n")
			for i := range n {
				fmt.Fprintf(&b, "user%05d@acme.example,User %d,Team %d\n", i, i, i%20)
			}
			rows, err := importer.ReadCSV(&b)
			if err != nil {
				t.Fatal(err)
			}
			res, err := importer.Import(context.Background(), c, "acme", rows, importer.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Created != n {
				t.Fatalf("%+v", res)
			}
			t.Logf("%s: %d rows in %v: %.0f rows/s (validation pass included)", engine, n, res.Elapsed.Round(1e6), float64(n)/res.Elapsed.Seconds())
		})
	}
}
