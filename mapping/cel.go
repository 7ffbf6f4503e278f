package mapping

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"

	"github.com/gatehouse-sso/gatehouse"
)

// Limits of mapping expressions. An expression runs on every login, over
// claims an IdP (possibly a hostile one, for a tenant that federates with
// outsiders) controls, so its cost is bounded both in CEL's abstract cost
// units and in wall time.
const (
	// MaxExpressionLen bounds the source text accepted at save time.
	MaxExpressionLen = 2048
	// CostLimit is CEL's runtime cost budget per evaluation; a string
	// operation costs about one unit per 10 characters, so this allows
	// ordinary transformations of a few KB of claims and stops quadratic
	// comprehensions early.
	CostLimit = 100_000
	// Timeout bounds one evaluation's wall time.
	Timeout = 100 * time.Millisecond
	// maxCached bounds the compiled-program cache; expressions come from
	// connection configs, so this is only reached by churn, and the cache
	// is then simply emptied.
	maxCached = 1024
)

var (
	envOnce sync.Once
	celEnv  *cel.Env
	envErr  error

	cacheMu sync.RWMutex
	cache   = map[string]*compiled{}
)

type compiled struct {
	prg cel.Program
	err error
}

func environment() (*cel.Env, error) {
	envOnce.Do(func() {
		celEnv, envErr = cel.NewEnv(
			cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
			// split, lowerAscii, replace, trim, substring... for
			// expressions like claims.upn.split("@")[0].
			ext.Strings(),
		)
	})
	return celEnv, envErr
}

// compile returns the program for field's expression, from the cache when
// it was compiled before (successful or not).
func compile(field, expr string) (cel.Program, error) {
	key := field + "\x00" + expr
	cacheMu.RLock()
	c, ok := cache[key]
	cacheMu.RUnlock()
	if ok {
		return c.prg, c.err
	}
	prg, err := build(field, expr)
	cacheMu.Lock()
	if len(cache) >= maxCached {
		cache = map[string]*compiled{}
	}
	cache[key] = &compiled{prg: prg, err: err}
	cacheMu.Unlock()
	return prg, err
}

func build(field, expr string) (cel.Program, error) {
	if len(expr) > MaxExpressionLen {
		return nil, fieldErr(field, "is longer than %d characters.", MaxExpressionLen)
	}
	env, err := environment()
	if err != nil {
		return nil, &gatehouse.Error{Code: gatehouse.EINTERNAL, Message: "Internal error.", Err: err}
	}
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, fieldErr(field, "does not compile: %s", firstLine(iss.Err().Error()))
	}
	if !outputOK(field, ast.OutputType()) {
		return nil, fieldErr(field, "must give %s, not %s.", want(field), ast.OutputType())
	}
	prg, err := env.Program(ast,
		cel.CostLimit(CostLimit),
		// Check the context (timeout) every 100 comprehension iterations.
		cel.InterruptCheckFrequency(100),
	)
	if err != nil {
		return nil, fieldErr(field, "cannot be prepared: %s", firstLine(err.Error()))
	}
	return prg, nil
}

func want(field string) string {
	switch field {
	case FieldEmailVerified:
		return "a bool"
	case FieldGroups:
		return "a list of strings"
	}
	return "a string"
}

// outputOK accepts the field's type, or dyn (checked again at run time).
func outputOK(field string, t *cel.Type) bool {
	k := t.Kind()
	if k == types.DynKind || k == types.AnyKind {
		return true
	}
	switch field {
	case FieldEmailVerified:
		return k == types.BoolKind
	case FieldGroups:
		return k == types.ListKind || k == types.StringKind
	}
	return k == types.StringKind
}

// evaluate runs field's expression over raw and returns the converted
// value (string, bool or []string), or nil when the expression yields null
// or an empty string (the IdP sent nothing usable).
func evaluate(field, expr string, raw map[string]any) (any, error) {
	prg, err := compile(field, expr)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		raw = map[string]any{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	out, _, err := prg.ContextEval(ctx, map[string]any{"claims": raw})
	if err != nil {
		// The cost budget first: on a starved machine the deadline may
		// also have passed by the time CEL stopped on its budget, and the
		// budget is what the admin must change.
		msg := firstLine(err.Error())
		if strings.Contains(msg, "cost limit") {
			return nil, fieldErr(field, "exceeded its cost budget (%d).", CostLimit)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fieldErr(field, "took longer than %s.", Timeout)
		}
		return nil, fieldErr(field, "failed: %s", msg)
	}
	v, ok := native(field, out)
	if !ok {
		return nil, fieldErr(field, "gave %s, expected %s.", out.Type().(ref.Type).TypeName(), want(field))
	}
	return v, nil
}

// native converts a CEL result to the field's Go type.
func native(field string, v ref.Val) (any, bool) {
	if v == types.NullValue {
		return nil, true
	}
	switch field {
	case FieldEmailVerified:
		b, ok := v.Value().(bool)
		if !ok {
			if s, isStr := v.Value().(string); isStr {
				c := toBool(s)
				return c, c != nil
			}
			return nil, false
		}
		return b, true
	case FieldGroups:
		if s, ok := v.Value().(string); ok {
			return toStrings(s), true
		}
		l, ok := v.(traits.Lister)
		if !ok {
			return nil, false
		}
		var items []any
		for it := l.Iterator(); it.HasNext() == types.True; {
			s, ok := it.Next().Value().(string)
			if !ok {
				return nil, false
			}
			items = append(items, s)
		}
		return toStrings(items), true
	}
	s, ok := v.Value().(string)
	if !ok {
		return nil, false
	}
	if s = strings.TrimSpace(s); s == "" {
		return nil, true
	}
	return s, true
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
