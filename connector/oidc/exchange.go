package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// The code exchange (RFC 6749 §4.1.3, OIDC Core §3.1.3), written here
// rather than through golang.org/x/oauth2's Config.Exchange: that one
// decodes every token response twice (into its struct, then into a map for
// Token.Extra), which was 2 % of the CPU of a login through an OIDC
// connection. Requests and answers are as x/oauth2's: the same client
// authentication, form answers accepted as well as JSON, errors as
// *oauth2.RetrieveError for ExchangeError.

// tokenResponse is what a login needs of a token endpoint's answer (RFC 6749
// §5.1 and §5.2, OIDC Core §3.1.3.3). Other members (expires_in, scope,
// refresh_token) are not read: a login uses the tokens once, at once.
type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	IDToken          string `json:"id_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorURI         string `json:"error_uri"`
}

// maxTokenResponse bounds the answer read, as x/oauth2 does.
const maxTokenResponse = 1 << 20

func (k *conn) exchange(ctx context.Context, md *Metadata, code, verifier string) (*tokenResponse, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {redirectURI(k.env, k.c)},
		"code_verifier": {verifier},
	}
	basic := false
	switch k.cfg.TokenEndpointAuthMethod {
	case AuthPost:
		form.Set("client_id", k.cfg.ClientID)
		form.Set("client_secret", k.sec.ClientSecret)
	case AuthPrivateKeyJWT:
		assertion, err := k.clientAssertion(md)
		if err != nil {
			return nil, err
		}
		form.Set("client_id", k.cfg.ClientID)
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", assertion)
	default:
		basic = true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, md.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, ExchangeError(ctx, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		// RFC 6749 §2.3.1: client id and secret are form-encoded before
		// they go into the Basic credentials.
		req.SetBasicAuth(url.QueryEscape(k.cfg.ClientID), url.QueryEscape(k.sec.ClientSecret))
	}
	resp, err := k.env.HTTPClient.Do(req)
	if err != nil {
		return nil, ExchangeError(ctx, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	resp.Body.Close()
	if err != nil {
		return nil, ExchangeError(ctx, fmt.Errorf("reading the token response: %w", err))
	}
	tr, err := parseTokenResponse(resp, body)
	if err != nil {
		return nil, ExchangeError(ctx, err)
	}
	return tr, nil
}

// parseTokenResponse reads a token endpoint's answer. A status other than
// 2xx, or an error member with any status (some servers answer errors with
// 200), is an *oauth2.RetrieveError; a success must carry an access token.
func parseTokenResponse(resp *http.Response, body []byte) (*tokenResponse, error) {
	var tr tokenResponse
	var perr error
	switch ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct {
	case "application/x-www-form-urlencoded", "text/plain":
		// Some OAuth 2.0 servers answer with a query string.
		var vals url.Values
		vals, perr = url.ParseQuery(string(body))
		tr = tokenResponse{AccessToken: vals.Get("access_token"), IDToken: vals.Get("id_token"),
			Error: vals.Get("error"), ErrorDescription: vals.Get("error_description"), ErrorURI: vals.Get("error_uri")}
	default:
		perr = json.Unmarshal(body, &tr)
	}
	failed := resp.StatusCode < 200 || resp.StatusCode > 299
	if failed || (perr == nil && tr.Error != "") {
		re := &oauth2.RetrieveError{Response: resp, Body: body}
		if perr == nil {
			re.ErrorCode, re.ErrorDescription, re.ErrorURI = tr.Error, tr.ErrorDescription, tr.ErrorURI
		}
		return nil, re
	}
	if perr != nil {
		return nil, fmt.Errorf("the token response does not parse: %w", perr)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("the token response has no access_token")
	}
	return &tr, nil
}
