package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/gatehouse-sso/gatehouse/store/migrations"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// MigrationState is one migration as `gatehouse migrate --status` shows it.
type MigrationState struct {
	Version int64
	// Name is the migration's file name, e.g. "00001_schema.sql".
	Name string
	// Applied is false for a migration not yet run.
	Applied   bool
	AppliedAt time.Time
}

// Migrate applies the pending migrations to the database at databaseURL.
// Open does the same; this is for the `gatehouse migrate` command.
func Migrate(ctx context.Context, databaseURL string) error {
	s, err := open(ctx, databaseURL, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	return s.migrate(ctx)
}

// Status lists every embedded migration and whether it was applied.
func Status(ctx context.Context, databaseURL string) ([]MigrationState, error) {
	s, err := open(ctx, databaseURL, Options{})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	p, err := s.provider()
	if err != nil {
		return nil, err
	}
	list, err := p.Status(ctx)
	if err != nil {
		return nil, s.d.mapErr(fmt.Errorf("migration status: %w", err))
	}
	out := make([]MigrationState, 0, len(list))
	for _, m := range list {
		st := MigrationState{Version: m.Source.Version, Name: path.Base(m.Source.Path), Applied: m.State == goose.StateApplied}
		if st.Applied {
			st.AppliedAt = m.AppliedAt.UTC()
		}
		out = append(out, st)
	}
	return out, nil
}

// provider is goose over this store's writer with the engine's migrations.
// On PostgreSQL a session advisory lock serializes replicas that start
// together: one migrates, the others wait and then find nothing to do.
func (s *Store) provider() (*goose.Provider, error) {
	fsys, err := fs.Sub(migrations.FS, s.d.dir)
	if err != nil {
		return nil, errInternal("migrations", err)
	}
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if s.d == postgresDialect {
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockTimeout(1, 600), // retry every second for up to 10 minutes
		)
		if err != nil {
			return nil, errInternal("migration lock", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(s.d.goose, s.writer, fsys, opts...)
	if err != nil {
		return nil, errInternal("migrations", err)
	}
	return p, nil
}

func (s *Store) migrate(ctx context.Context) error {
	p, err := s.provider()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		s.log.InfoContext(ctx, "sqlstore: migration applied", "engine", s.d.name,
			"version", r.Source.Version, "file", path.Base(r.Source.Path), "duration", r.Duration)
	}
	if err != nil {
		return s.d.mapErr(fmt.Errorf("apply migrations: %w", err))
	}
	return nil
}
