package loadtest

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// dbCPU measures the CPU time of the PostgreSQL backends serving one
// database (found in pg_stat_activity; they run on this machine), so a
// PostgreSQL run can report Gatehouse's CPU and its database's CPU per
// flow. Backends that appear during the window count from zero. Only
// client backends count: an autovacuum worker found at the window's end
// would count from zero too, with all it did before the window.
type dbCPU struct {
	db     *sql.DB
	name   string
	before map[int]time.Duration
}

func newDBCPU(dbURL string) (*dbCPU, error) {
	if !strings.HasPrefix(dbURL, "postgres") {
		return nil, nil
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		return nil, err
	}
	path := dbURL[:strings.IndexAny(dbURL+"?", "?")]
	return &dbCPU{db: db, name: path[strings.LastIndexByte(path, '/')+1:]}, nil
}

func (d *dbCPU) sample(ctx context.Context) (map[int]time.Duration, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`, d.name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			return nil, err
		}
		if st, err := ReadProc(pid); err == nil {
			out[pid] = st.CPU
		}
	}
	return out, rows.Err()
}

// Start samples before the window.
func (d *dbCPU) Start(ctx context.Context) error {
	var err error
	d.before, err = d.sample(ctx)
	return err
}

// Stop returns the backends' CPU time since Start.
func (d *dbCPU) Stop(ctx context.Context) (time.Duration, error) {
	after, err := d.sample(ctx)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for pid, cpu := range after {
		sum += cpu - d.before[pid]
	}
	return sum, nil
}

func (d *dbCPU) Close() {
	if d != nil {
		_ = d.db.Close()
	}
}
