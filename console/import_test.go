package console_test

import (
	"bytes"
	"context"
	"html"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/internal/servertest"
	"github.com/gatehouse-sso/gatehouse/internal/testdb"
)

// upload posts the import form as a browser does (multipart), with the
// page's CSRF token; file is sent as the "file" field when name is set.
func (c *client) upload(fields map[string]string, name, file string) answer {
	c.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if _, ok := fields["csrf"]; !ok {
		fields["csrf"] = c.csrf("/console/t/acme/import")
	}
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if name != "" {
		fw, err := mw.CreateFormFile("file", name)
		if err != nil {
			c.t.Fatal(err)
		}
		_, _ = fw.Write([]byte(file))
	}
	_ = mw.Close()
	req, err := http.NewRequest("POST", c.base+"/console/t/acme/import", &body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return answer{code: resp.StatusCode, body: b.String(), location: resp.Header.Get("Location"), header: resp.Header}
}

var dataRE = regexp.MustCompile(`name="data" value="([^"]+)"`)

// previewData is the file the preview page carries to its Import button.
func previewData(t *testing.T, a answer) string {
	t.Helper()
	m := dataRE.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no import form on the preview: %.2000s", a.body)
	}
	return html.UnescapeString(m[1])
}

func usersOf(t *testing.T, gh *servertest.Instance, slug string) []*gatehouse.User {
	t.Helper()
	ten := tenantBySlug(t, gh, slug)
	var us []*gatehouse.User
	_ = gh.Store.View(context.Background(), func(tx gatehouse.Tx) (err error) {
		us, _, err = tx.ListUsers(context.Background(), ten.ID, gatehouse.UserFilter{}, gatehouse.Page{Limit: 100})
		return err
	})
	return us
}

const goodCSV = "email,display_name,groups\nana@acme.com,Ana Lima,Engineering;IT\nbo@acme.com,\"Berg, Bo\",\n"

// TestImportBadRows: every bad row is listed by its line number and
// nothing is written, for syntax (CSV, JSON) and tenant checks alike.
func TestImportBadRows(t *testing.T) {
	gh, c := operator(t)
	setupAcme(t, c)
	want(t, c.get("/console/t/acme/import"), http.StatusOK, "Check a file", `enctype="multipart/form-data"`, "email")
	csv := "email,username,status\nok@acme.com,,\nnot-an-email,,\nok@acme.com,,\nzed@acme.com,,retired\n"
	a := c.upload(map[string]string{"step": "check"}, "users.csv", csv)
	want(t, a, http.StatusUnprocessableEntity, "nothing was written", `id="bad-rows"`)
	for _, line := range []string{"<td>3</td>", "<td>4</td>", "<td>5</td>", "also on line 2", "active or deactivated"} {
		if !strings.Contains(a.body, line) {
			t.Errorf("bad rows lack %q: %.3000s", line, a.body)
		}
	}
	if strings.Contains(a.body, `id="import-now"`) {
		t.Error("an Import button for a file with bad rows")
	}
	// Even the import step itself refuses, writing nothing.
	a = c.upload(map[string]string{"step": "import"}, "users.csv", csv)
	want(t, a, http.StatusUnprocessableEntity, "nothing was written")
	// Syntax: a JSON object with an unknown key, by the line it starts on.
	a = c.upload(map[string]string{"step": "check"}, "users.json", "[\n  {\"email\": \"a@acme.com\"},\n  {\"email\": \"b@acme.com\", \"role\": \"admin\"}\n]")
	want(t, a, http.StatusUnprocessableEntity, "<td>3</td>", "unknown field")
	// A header that is not the import's.
	a = c.upload(map[string]string{"step": "check"}, "users.csv", "mail,name\nx@acme.com,X\n")
	want(t, a, http.StatusUnprocessableEntity, "unknown column")
	// No file (a browser sends an empty part without a name).
	a = c.upload(map[string]string{"step": "check"}, "", "")
	want(t, a, http.StatusUnprocessableEntity, `id="e-file"`)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf", c.csrf("/console/t/acme/import"))
	_, _ = mw.CreateFormFile("file", "")
	_ = mw.Close()
	resp, err := c.hc.Post(c.base+"/console/t/acme/import", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("empty file part: %d", resp.StatusCode)
	}
	if n := len(usersOf(t, gh, "acme")); n != 0 {
		t.Fatalf("a refused import wrote %d users", n)
	}
	if n := auditActions(t, gh, "acme", "users.imported"); n != 0 {
		t.Fatalf("users.imported events: %d", n)
	}
	// Without the form's token, or signed out: refused, nothing written.
	want(t, c.upload(map[string]string{"step": "import", "csrf": "forged"}, "users.csv", goodCSV), http.StatusForbidden, "out of date")
	c.hc.Jar = nil
	if a := c.upload(map[string]string{"step": "import", "csrf": "x"}, "users.csv", goodCSV); a.code != http.StatusSeeOther || a.location != "/console/signin" {
		t.Fatalf("anonymous upload: %d %q", a.code, a.location)
	}
	if n := len(usersOf(t, gh, "acme")); n != 0 {
		t.Fatalf("a refused upload wrote %d users", n)
	}
}

// TestImport: a good file is checked (a dry run that counts, writing
// nothing), imported from the preview, and the result shown once; the
// same file again is all unchanged.
func TestImport(t *testing.T) {
	for _, engine := range testdb.Engines {
		t.Run(engine, func(t *testing.T) { importJourney(t, engine) })
	}
}

func importJourney(t *testing.T, engine string) {
	gh, c := operatorOn(t, engine)
	setupAcme(t, c)
	a := c.upload(map[string]string{"step": "check"}, "users.csv", goodCSV)
	want(t, a, http.StatusOK, "Every row of users.csv is valid", "<strong>2</strong> create", "<strong>0</strong> update", `id="import-now"`)
	if n := len(usersOf(t, gh, "acme")); n != 0 {
		t.Fatalf("the check wrote %d users", n)
	}
	data := previewData(t, a)

	// The preview's form sends the file back with step=import.
	a = c.upload(map[string]string{"step": "import", "name": "users.csv", "data": data}, "", "")
	want(t, a, http.StatusSeeOther)
	if a.location != "/console/t/acme/import?m=imported" {
		t.Fatalf("import redirect: %q", a.location)
	}
	a = c.get(a.location)
	want(t, a, http.StatusOK, "Import done", "<strong>2</strong> created", "<strong>2</strong> groups created")
	// A reload shows the form, not the result again (and posts nothing).
	if b := c.get("/console/t/acme/import?m=imported").body; strings.Contains(b, "Import done") {
		t.Fatal("the result is shown again")
	}
	want(t, c.get("/console/t/acme/users?source=import"), http.StatusOK, "bo@acme.com", "ana@acme.com")
	us := usersOf(t, gh, "acme")
	if len(us) != 2 {
		t.Fatalf("users: %d", len(us))
	}
	bo := findUser(t, gh, "acme", "bo@acme.com")
	if bo.DisplayName != "Berg, Bo" || bo.Source != gatehouse.SourceImport {
		t.Fatalf("bo: %+v", bo)
	}
	ev := auditOf(t, gh, "acme", "users.imported")
	if len(ev) != 1 || ev[0].Details["via"] != "console" || ev[0].ActorType != "superuser" {
		t.Fatalf("users.imported audit: %+v", ev)
	}
	if n := len(auditOf(t, gh, "acme", "user.created")); n != 2 {
		t.Fatalf("user.created events: %d", n)
	}

	// Idempotent: the same file again changes nothing.
	a = c.upload(map[string]string{"step": "check"}, "users.csv", goodCSV)
	want(t, a, http.StatusOK, "<strong>0</strong> create", "<strong>2</strong> leave unchanged")
	a = c.upload(map[string]string{"step": "import", "name": "users.csv", "data": previewData(t, a)}, "", "")
	want(t, a, http.StatusSeeOther)
	want(t, c.get(a.location), http.StatusOK, "<strong>0</strong> created", "<strong>0</strong> updated", "<strong>2</strong> unchanged")
	if n := len(usersOf(t, gh, "acme")); n != 2 {
		t.Fatalf("users after the second import: %d", n)
	}
	if n := len(auditOf(t, gh, "acme", "user.created")); n != 2 {
		t.Fatalf("user.created events after the second import: %d", n)
	}

	// JSON updates: one changed name, by the same code path.
	a = c.upload(map[string]string{"step": "check"}, "users.json", `[{"email":"ana@acme.com","display_name":"Ana L."},{"email":"cy@acme.com"}]`)
	want(t, a, http.StatusOK, "<strong>1</strong> create", "<strong>1</strong> update")
	a = c.upload(map[string]string{"step": "import", "name": "users.json", "data": previewData(t, a)}, "", "")
	want(t, c.get(a.location), http.StatusOK, "<strong>1</strong> created", "<strong>1</strong> updated")
	if u := findUser(t, gh, "acme", "ana@acme.com"); u.DisplayName != "Ana L." {
		t.Fatalf("ana after the JSON import: %q", u.DisplayName)
	}
}
