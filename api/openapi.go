package api

import (
	_ "embed"
	"net/http"
)

// openAPIDoc is the OpenAPI 3.1 description of this API, kept in the repo
// and checked against the routing table by TestOpenAPIMatchesRoutes.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI document.
func OpenAPI() []byte { return openAPIDoc }

func (s *server) openAPI(w http.ResponseWriter, r *http.Request, c *call) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openAPIDoc)
	return nil
}
