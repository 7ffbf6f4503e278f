package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/gatehouse-sso/gatehouse/api"
	"github.com/gatehouse-sso/gatehouse/importer"
)

// Bulk import in the console: the file format is `gatehouse import`'s
// (package importer reads it) and the rows go through the admin API's
// import code path (api.Service.Import): every row is checked against
// the tenant first, bad rows are listed by line with nothing written, a
// dry run previews the counts, and the import itself is one transaction.

type importData struct {
	// Name is the uploaded file's name; Data the file, base64, carried by
	// the preview's form to the import (the browser sends it back).
	Name, Data string
	Rows       int
	Result     *api.ImportResult
	Bad        []importer.RowError
	// Done is an import's result, shown once after the redirect.
	Done    *api.ImportResult
	Max     int
	Columns string
}

func (c *Console) newImportData() *importData {
	return &importData{Max: api.MaxImportRows, Columns: strings.Join(importer.Columns, ", ")}
}

func (c *Console) importPage(w http.ResponseWriter, r *http.Request, k *call) error {
	d := c.newImportData()
	if s := c.takeOnce(w, r, k, tp(k.t, "/import")); s != "" {
		var res api.ImportResult
		if json.Unmarshal([]byte(s), &res) == nil {
			d.Done = &res
		}
	}
	return c.render(w, r, k, http.StatusOK, "import", "Import users", "import", &view{D: d})
}

// importUpload checks a file (step "check": a dry run that shows the bad
// rows or what an import would do) or imports it (step "import").
func (c *Console) importUpload(w http.ResponseWriter, r *http.Request, k *call) error {
	d := c.newImportData()
	v := &view{D: d}
	page := func(err error) error {
		if err != nil {
			if err := showError(v, err); err != nil {
				return err
			}
		}
		return c.render(w, r, k, http.StatusOK, "import", "Import users", "import", v)
	}
	data, name, err := importFile(r)
	if err != nil {
		return page(err)
	}
	d.Name, d.Data = name, base64.StdEncoding.EncodeToString(data)
	rows, err := readImport(name, data)
	var inv *importer.InvalidError
	if errors.As(err, &inv) {
		d.Bad = inv.Rows
		return page(gatehouse.Errorf(gatehouse.EINVALID, "%d row(s) of %s are invalid; nothing was written.", len(inv.Rows), name))
	}
	if err != nil {
		return page(gatehouse.Errorf(gatehouse.EINVALID, "%s cannot be read: %s", name, err.Error()))
	}
	d.Rows = len(rows)
	if len(rows) == 0 {
		return page(gatehouse.Errorf(gatehouse.EINVALID, "%s holds no users.", name))
	}
	if len(rows) > api.MaxImportRows {
		return page(gatehouse.Errorf(gatehouse.EINVALID, "%s has %d rows; the console imports at most %d at a time. Use the command line (gatehouse import), which sends bigger files in parts.", name, len(rows), api.MaxImportRows))
	}
	in := make([]api.ImportRow, len(rows))
	for i, row := range rows {
		in[i] = api.ImportRow(row)
	}
	dry := r.PostForm.Get("step") != "import"
	res, err := c.admin.Import(r.Context(), k.t.ID, k.p.actor(r), in, dry)
	if errors.Is(err, api.ErrRowsInvalid) {
		for _, e := range res.Errors {
			d.Bad = append(d.Bad, importer.RowError(e))
		}
		return page(gatehouse.Errorf(gatehouse.EINVALID, "%d row(s) of %s are invalid; nothing was written.", len(d.Bad), name))
	}
	if err != nil {
		return page(err)
	}
	if dry {
		d.Result = res
		return page(nil)
	}
	out, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return c.showOnce(w, r, k, tp(k.t, "/import"), string(out), "imported")
}

// importFile is the uploaded file, or the file the preview's form sends
// back (base64 in "data").
func importFile(r *http.Request) (data []byte, name string, err error) {
	// A browser sends an empty part with no name when no file is chosen.
	if f, h, ferr := r.FormFile("file"); ferr == nil && (h.Filename != "" || h.Size > 0) {
		defer f.Close()
		data, err = io.ReadAll(io.LimitReader(f, maxUpload))
		return data, filepath.Base(h.Filename), err
	}
	name = filepath.Base(strings.TrimSpace(r.PostForm.Get("name")))
	if s := r.PostForm.Get("data"); s != "" {
		data, err = base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, "", gatehouse.Errorf(gatehouse.EINVALID, "The file sent back by the preview is damaged; choose the file again.")
		}
		return data, name, nil
	}
	return nil, "", gatehouse.FieldError("file", "Choose a CSV or JSON file.")
}

// readImport reads CSV or JSON: by the file's extension, or a JSON array
// when the content starts with "[".
func readImport(name string, data []byte) ([]importer.Row, error) {
	if strings.EqualFold(filepath.Ext(name), ".json") || bytes.HasPrefix(bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\ufeff"))), []byte("[")) {
		return importer.ReadJSON(bytes.NewReader(data))
	}
	return importer.ReadCSV(bytes.NewReader(data))
}
