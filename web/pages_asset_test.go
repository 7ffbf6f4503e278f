package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAssets: the stylesheet and the SAML auto-post script are served from
// our own origin (CSP script-src 'self'); nothing else is.
func TestAssets(t *testing.T) {
	s := &Server{}
	for _, tc := range []struct {
		file, ctype string
		code        int
	}{
		{"web.css", "text/css", 200},
		{"autopost.js", "text/javascript", 200},
	} {
		r := httptest.NewRequest("GET", "/sso/assets/"+tc.file, nil)
		r.SetPathValue("file", tc.file)
		w := httptest.NewRecorder()
		s.handleAsset(w, r)
		if w.Code != tc.code || !strings.HasPrefix(w.Header().Get("Content-Type"), tc.ctype) || w.Body.Len() == 0 {
			t.Errorf("%s: %d %q", tc.file, w.Code, w.Header().Get("Content-Type"))
		}
	}
	if !strings.Contains(string(autopostJS), "form[data-autopost]") {
		t.Error("autopost script does not look for the marked form")
	}
}
