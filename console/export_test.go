package console

// RoutePatterns lists the signed-in routes ("METHOD /path"), for the
// auth-on-every-page test.
func RoutePatterns() []string {
	var out []string
	for _, rt := range routeTable() {
		out = append(out, rt.pattern)
	}
	return out
}
