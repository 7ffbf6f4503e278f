// Package filter parses SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths
// (RFC 7644 §3.5.2) into a small syntax tree.
//
// It is our own recursive-descent parser rather than scim2/filter-parser:
// that library's PEG grammar spends over a second on a 10,000-deep filter
// and reports no depth, whereas here the length and nesting are checked in
// one linear scan BEFORE parsing, and the parser itself never recurses more
// than the checked depth. Operators, logical words and attribute names are
// case-insensitive (RFC 7644 §3.4.2.2, RFC 7643 §2.1).
package filter

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Comparison and logical operators (lower-case, as RFC 7644 §3.4.2.2 lists them).
const (
	And = "and"
	Or  = "or"
	Not = "not"
	Eq  = "eq"
	Ne  = "ne"
	Co  = "co"
	Sw  = "sw"
	Ew  = "ew"
	Pr  = "pr"
	Gt  = "gt"
	Ge  = "ge"
	Lt  = "lt"
	Le  = "le"
	// ValuePath is `attr[filter]`: Path names the multi-valued attribute and
	// Children[0] is the filter over its sub-attributes.
	ValuePath = "[]"
)

var compareOps = map[string]bool{Eq: true, Ne: true, Co: true, Sw: true, Ew: true, Gt: true, Ge: true, Lt: true, Le: true}

// Limits bound the work a filter may cause. They are checked on the raw
// text before any parsing.
type Limits struct {
	// MaxLength in bytes; default 4096.
	MaxLength int
	// MaxDepth of nested parentheses and brackets; default 16.
	MaxDepth int
	// MaxTerms: comparisons in the whole filter; default 100.
	MaxTerms int
}

func (l Limits) withDefaults() Limits {
	if l.MaxLength <= 0 {
		l.MaxLength = 4096
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 16
	}
	if l.MaxTerms <= 0 {
		l.MaxTerms = 100
	}
	return l
}

// Path is an attribute path: [URI ":"] name ["." sub].
type Path struct {
	URI  string // schema URN, "" for the resource's core schema
	Attr string
	Sub  string
}

func (p Path) String() string {
	s := p.Attr
	if p.URI != "" {
		s = p.URI + ":" + s
	}
	if p.Sub != "" {
		s += "." + p.Sub
	}
	return s
}

// Expr is one node of a parsed filter.
type Expr struct {
	Op       string
	Path     Path
	Value    any // string, json.Number, bool or nil (null); set for compare ops
	Children []*Expr
}

func (e *Expr) String() string {
	switch e.Op {
	case And, Or:
		return "(" + e.Children[0].String() + " " + e.Op + " " + e.Children[1].String() + ")"
	case Not:
		return "not (" + e.Children[0].String() + ")"
	case ValuePath:
		return e.Path.String() + "[" + e.Children[0].String() + "]"
	case Pr:
		return e.Path.String() + " pr"
	}
	v, _ := json.Marshal(e.Value)
	return e.Path.String() + " " + e.Op + " " + string(v)
}

// Error is a syntax or limit error; Pos is a byte offset into the input.
type Error struct {
	Pos int
	Msg string
	// TooLarge: the input broke a Limit (SCIM answers it too, as invalidFilter).
	TooLarge bool
}

func (e *Error) Error() string { return fmt.Sprintf("%s (at offset %d)", e.Msg, e.Pos) }

// Parse parses a filter under the given limits.
func Parse(s string, lim Limits) (*Expr, error) {
	lim = lim.withDefaults()
	if err := precheck(s, lim); err != nil {
		return nil, err
	}
	p := &parser{s: s, lim: lim}
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p.toks = toks
	e, err := p.parseOr(false)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, &Error{Pos: t.pos, Msg: fmt.Sprintf("unexpected %q", t.text)}
	}
	return e, nil
}

// precheck enforces the size and depth limits in one linear scan, so a
// hostile filter costs O(n) before being refused.
func precheck(s string, lim Limits) error {
	if len(s) > lim.MaxLength {
		return &Error{Pos: lim.MaxLength, Msg: fmt.Sprintf("filter longer than %d bytes", lim.MaxLength), TooLarge: true}
	}
	depth, inStr := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inStr {
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch c {
		case '"':
			inStr = true
		case '(', '[':
			depth++
			if depth > lim.MaxDepth {
				return &Error{Pos: i, Msg: fmt.Sprintf("filter nested deeper than %d levels", lim.MaxDepth), TooLarge: true}
			}
		case ')', ']':
			depth--
		}
	}
	return nil
}

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tString
	tNumber
	tLParen
	tRParen
	tLBracket
	tRBracket
)

type token struct {
	kind tokKind
	text string
	pos  int
	val  any
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == ':' || c == '.' || c == '$'
}

func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{kind: tLParen, text: "(", pos: i})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, text: ")", pos: i})
			i++
		case c == '[':
			toks = append(toks, token{kind: tLBracket, text: "[", pos: i})
			i++
		case c == ']':
			toks = append(toks, token{kind: tRBracket, text: "]", pos: i})
			i++
		case c == '"':
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == '\\' {
					j++
				} else if s[j] == '"' {
					break
				}
			}
			if j >= len(s) {
				return nil, &Error{Pos: i, Msg: "unterminated string"}
			}
			var v string
			if err := json.Unmarshal([]byte(s[i:j+1]), &v); err != nil {
				return nil, &Error{Pos: i, Msg: "invalid string literal"}
			}
			toks = append(toks, token{kind: tString, text: s[i : j+1], pos: i, val: v})
			i = j + 1
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' || s[j] == '+' || s[j] == '-') {
				j++
			}
			var n json.Number
			if err := json.Unmarshal([]byte(s[i:j]), &n); err != nil {
				// An attribute name may start with a digit only in URIs; treat as word.
				if isWordByte(c) && c != '-' {
					goto word
				}
				return nil, &Error{Pos: i, Msg: "invalid number"}
			}
			toks = append(toks, token{kind: tNumber, text: s[i:j], pos: i, val: n})
			i = j
		case isWordByte(c):
			goto word
		default:
			return nil, &Error{Pos: i, Msg: fmt.Sprintf("unexpected character %q", c)}
		}
		continue
	word:
		{
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			toks = append(toks, token{kind: tWord, text: s[i:j], pos: i})
			i = j
		}
	}
	toks = append(toks, token{kind: tEOF, text: "end of filter", pos: len(s)})
	return toks, nil
}

type parser struct {
	s     string
	lim   Limits
	toks  []token
	i     int
	terms int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) isWord(t token, w string) bool {
	return t.kind == tWord && strings.EqualFold(t.text, w)
}

// parseOr: FILTER = andExp *("or" andExp); "and" binds tighter (RFC 7644
// §3.4.2.2 gives "and" precedence over "or").
func (p *parser) parseOr(inValue bool) (*Expr, error) {
	left, err := p.parseAnd(inValue)
	if err != nil {
		return nil, err
	}
	for p.isWord(p.peek(), Or) {
		p.next()
		right, err := p.parseAnd(inValue)
		if err != nil {
			return nil, err
		}
		left = &Expr{Op: Or, Children: []*Expr{left, right}}
	}
	return left, nil
}

func (p *parser) parseAnd(inValue bool) (*Expr, error) {
	left, err := p.parseUnary(inValue)
	if err != nil {
		return nil, err
	}
	for p.isWord(p.peek(), And) {
		p.next()
		right, err := p.parseUnary(inValue)
		if err != nil {
			return nil, err
		}
		left = &Expr{Op: And, Children: []*Expr{left, right}}
	}
	return left, nil
}

// parseUnary: "not" "(" FILTER ")" / "(" FILTER ")" / attrExp / valuePath.
// Recursion happens only through parentheses and brackets, whose depth
// precheck bounded.
func (p *parser) parseUnary(inValue bool) (*Expr, error) {
	t := p.peek()
	if p.isWord(t, Not) && p.toks[p.i+1].kind == tLParen {
		p.next()
		inner, err := p.parseParen(inValue)
		if err != nil {
			return nil, err
		}
		return &Expr{Op: Not, Children: []*Expr{inner}}, nil
	}
	if t.kind == tLParen {
		return p.parseParen(inValue)
	}
	if t.kind != tWord {
		return nil, &Error{Pos: t.pos, Msg: fmt.Sprintf("expected an attribute name, found %q", t.text)}
	}
	p.next()
	path, err := ParseAttrPath(t.text)
	if err != nil {
		return nil, &Error{Pos: t.pos, Msg: err.Error()}
	}
	if p.peek().kind == tLBracket {
		if inValue {
			return nil, &Error{Pos: p.peek().pos, Msg: "value filters cannot be nested"}
		}
		if path.Sub != "" {
			return nil, &Error{Pos: t.pos, Msg: "a value filter applies to a multi-valued attribute, not a sub-attribute"}
		}
		p.next()
		inner, err := p.parseOr(true)
		if err != nil {
			return nil, err
		}
		if cl := p.next(); cl.kind != tRBracket {
			return nil, &Error{Pos: cl.pos, Msg: fmt.Sprintf("expected ']', found %q", cl.text)}
		}
		// Entra ID sends `emails[type eq "work"].value eq "x"`, outside the
		// RFC grammar; it means emails[type eq "work" and value eq "x"].
		if nt := p.peek(); nt.kind == tWord && strings.HasPrefix(nt.text, ".") {
			p.next()
			if !validName(nt.text[1:]) {
				return nil, &Error{Pos: nt.pos, Msg: fmt.Sprintf("invalid sub-attribute %q", nt.text)}
			}
			cmp, err := p.parseComparison(Path{Attr: nt.text[1:]}, nt)
			if err != nil {
				return nil, err
			}
			inner = &Expr{Op: And, Children: []*Expr{inner, cmp}}
		}
		return &Expr{Op: ValuePath, Path: path, Children: []*Expr{inner}}, nil
	}
	return p.parseComparison(path, t)
}

// parseComparison parses `op value` or `pr` after the attribute path.
func (p *parser) parseComparison(path Path, t token) (*Expr, error) {
	opTok := p.next()
	if opTok.kind != tWord {
		return nil, &Error{Pos: opTok.pos, Msg: fmt.Sprintf("expected an operator after %q, found %q", t.text, opTok.text)}
	}
	op := strings.ToLower(opTok.text)
	p.terms++
	if p.terms > p.lim.MaxTerms {
		return nil, &Error{Pos: opTok.pos, Msg: fmt.Sprintf("filter has more than %d comparisons", p.lim.MaxTerms), TooLarge: true}
	}
	if op == Pr {
		return &Expr{Op: Pr, Path: path}, nil
	}
	if !compareOps[op] {
		return nil, &Error{Pos: opTok.pos, Msg: fmt.Sprintf("unknown operator %q", opTok.text)}
	}
	vt := p.next()
	var val any
	switch vt.kind {
	case tString, tNumber:
		val = vt.val
	case tWord:
		switch strings.ToLower(vt.text) {
		case "true":
			val = true
		case "false":
			val = false
		case "null":
			val = nil
		default:
			return nil, &Error{Pos: vt.pos, Msg: fmt.Sprintf("expected a value (string, number, true, false or null), found %q", vt.text)}
		}
	default:
		return nil, &Error{Pos: vt.pos, Msg: fmt.Sprintf("expected a value after %q, found %q", opTok.text, vt.text)}
	}
	return &Expr{Op: op, Path: path, Value: val}, nil
}

func (p *parser) parseParen(inValue bool) (*Expr, error) {
	if t := p.next(); t.kind != tLParen {
		return nil, &Error{Pos: t.pos, Msg: "expected '('"}
	}
	inner, err := p.parseOr(inValue)
	if err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != tRParen {
		return nil, &Error{Pos: t.pos, Msg: fmt.Sprintf("expected ')', found %q", t.text)}
	}
	return inner, nil
}

// ParseAttrPath parses `[URI ":"] ATTRNAME ["." subAttr]` (RFC 7644
// §3.10). A URI is recognised by its "urn:" prefix; the attribute follows
// its last colon, so "…:enterprise:2.0:User:manager.value" splits into the
// URN, "manager" and "value".
func ParseAttrPath(s string) (Path, error) {
	var p Path
	rest := s
	if len(s) > 4 && strings.EqualFold(s[:4], "urn:") {
		i := strings.LastIndexByte(s, ':')
		p.URI, rest = s[:i], s[i+1:]
	}
	name, sub, hasSub := strings.Cut(rest, ".")
	if !validName(name) || (hasSub && !validName(sub)) {
		return Path{}, fmt.Errorf("invalid attribute path %q", s)
	}
	p.Attr, p.Sub = name, sub
	return p, nil
}

// validName: ATTRNAME = ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT /
// ALPHA (RFC 7643 §2.1). "$ref" is the one name with a "$".
func validName(s string) bool {
	if s == "" {
		return false
	}
	if s == "$ref" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !alpha {
			return false
		}
		if !alpha && !(c >= '0' && c <= '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

// PatchPath is a PATCH operation's target (RFC 7644 §3.5.2):
// attrPath / valuePath ["." subAttr].
type PatchPath struct {
	Path
	// Filter selects elements of a multi-valued attribute; nil for none.
	Filter *Expr
}

func (p PatchPath) String() string {
	if p.Filter == nil {
		return p.Path.String()
	}
	s := p.Attr
	if p.URI != "" {
		s = p.URI + ":" + s
	}
	s += "[" + p.Filter.String() + "]"
	if p.Sub != "" {
		s += "." + p.Sub
	}
	return s
}

// ParsePatchPath parses a PATCH path under the given limits.
func ParsePatchPath(s string, lim Limits) (PatchPath, error) {
	lim = lim.withDefaults()
	if err := precheck(s, lim); err != nil {
		return PatchPath{}, err
	}
	open := strings.IndexByte(s, '[')
	if open < 0 {
		p, err := ParseAttrPath(strings.TrimSpace(s))
		if err != nil {
			return PatchPath{}, &Error{Pos: 0, Msg: err.Error()}
		}
		return PatchPath{Path: p}, nil
	}
	p, err := ParseAttrPath(s[:open])
	if err != nil {
		return PatchPath{}, &Error{Pos: 0, Msg: err.Error()}
	}
	if p.Sub != "" {
		return PatchPath{}, &Error{Pos: open, Msg: "a value filter applies to a multi-valued attribute, not a sub-attribute"}
	}
	// Find the matching ']' outside strings.
	end, inStr := -1, false
	for i := open + 1; i < len(s) && end < 0; i++ {
		switch c := s[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case !inStr && c == ']':
			end = i
		}
	}
	if end < 0 {
		return PatchPath{}, &Error{Pos: open, Msg: "missing ']'"}
	}
	inner, err := Parse(s[open+1:end], lim)
	if err != nil {
		if fe, ok := err.(*Error); ok {
			fe.Pos += open + 1
		}
		return PatchPath{}, err
	}
	if err := checkFlat(inner); err != nil {
		return PatchPath{}, err
	}
	out := PatchPath{Path: p, Filter: inner}
	if rest := s[end+1:]; rest != "" {
		if rest[0] != '.' || !validName(rest[1:]) {
			return PatchPath{}, &Error{Pos: end + 1, Msg: fmt.Sprintf("invalid sub-attribute %q after ']'", rest)}
		}
		out.Sub = rest[1:]
	}
	return out, nil
}

// checkFlat refuses value paths inside a PATCH value filter.
func checkFlat(e *Expr) error {
	if e.Op == ValuePath {
		return &Error{Msg: "value filters cannot be nested"}
	}
	for _, c := range e.Children {
		if err := checkFlat(c); err != nil {
			return err
		}
	}
	return nil
}
