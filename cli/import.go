package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/gatehouse-sso/gatehouse/importer"
)

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// importUsers: gatehouse import FILE.csv|FILE.json [--dry-run] [--chunk N]
func (c *client) importUsers(ctx context.Context, args []string) error {
	f := c.newFlags("import")
	dry := f.Bool("dry-run", false, "")
	chunk := f.Int("chunk", 1000, "")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("import needs one file: users.csv or users.json")
	}
	if c.tenant == "" {
		return usagef("no tenant: pass --tenant or set GATEHOUSE_TENANT")
	}
	rows, err := importer.ReadFile(pos[1])
	if err != nil {
		return err
	}
	o := importer.Options{DryRun: *dry, Chunk: *chunk}
	if isTerminal(c.stdout) {
		o.Progress = c.stdout
	}
	res, err := importer.Import(ctx, c.api(), c.tenant, rows, o)
	if err != nil {
		return err
	}
	if c.json {
		c.printJSON(res)
		return nil
	}
	what := "Imported"
	if *dry {
		what = "Dry run (nothing written):"
	}
	fmt.Fprintf(c.stdout, "%s %d rows: %d created, %d updated, %d unchanged, %d groups created (%.0f rows/s).\n",
		what, res.Rows, res.Created, res.Updated, res.Unchanged, res.GroupsCreated, float64(res.Rows)/max(res.Elapsed.Seconds(), 1e-3))
	return nil
}
