package op

import (
	"encoding/json"
	"time"

	"github.com/gatehouse-sso/gatehouse"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	zop "github.com/zitadel/oidc/v3/pkg/op"
)

// authParams are the protocol parameters of an authorize request, stored
// as the JSON of OPAuthRequest.Request.
type authParams struct {
	RedirectURI         string   `json:"redirect_uri"`
	Scopes              []string `json:"scope"`
	ResponseType        string   `json:"response_type"`
	ResponseMode        string   `json:"response_mode,omitempty"`
	State               string   `json:"state,omitempty"`
	Nonce               string   `json:"nonce,omitempty"`
	Prompt              []string `json:"prompt,omitempty"`
	MaxAge              *uint    `json:"max_age,omitempty"`
	LoginHint           string   `json:"login_hint,omitempty"`
	CodeChallenge       string   `json:"code_challenge,omitempty"`
	CodeChallengeMethod string   `json:"code_challenge_method,omitempty"`
	// HintSubject is the subject of a valid id_token_hint.
	HintSubject string `json:"hint_sub,omitempty"`
}

// authRequest is a stored authorize request as zitadel's op.AuthRequest.
type authRequest struct {
	row *gatehouse.OPAuthRequest
	p   authParams
	// sealed: the request has no row until it is answered (sealed.go).
	sealed bool
}

var _ zop.AuthRequest = (*authRequest)(nil)

func loadAuthRequest(row *gatehouse.OPAuthRequest) (*authRequest, error) {
	a := &authRequest{row: row}
	if err := json.Unmarshal(row.Request, &a.p); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *authRequest) GetID() string          { return a.row.ID }
func (a *authRequest) GetACR() string         { return "" }
func (a *authRequest) GetAMR() []string       { return nil }
func (a *authRequest) GetAudience() []string  { return []string{a.row.ClientID} }
func (a *authRequest) GetAuthTime() time.Time { return a.row.AuthTime }
func (a *authRequest) GetClientID() string    { return a.row.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.p.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.p.CodeChallenge, Method: oidc.CodeChallengeMethod(a.p.CodeChallengeMethod)}
}
func (a *authRequest) GetNonce() string                   { return a.p.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.p.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return oidc.ResponseType(a.p.ResponseType) }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return oidc.ResponseMode(a.p.ResponseMode) }
func (a *authRequest) GetScopes() []string                { return a.p.Scopes }
func (a *authRequest) GetState() string                   { return a.p.State }
func (a *authRequest) GetSubject() string                 { return a.row.UserID }
func (a *authRequest) Done() bool                         { return a.row.Done }
func (a *authRequest) sessionID() string                  { return a.row.SessionID }

// refreshRequest is a presented refresh token as zitadel's
// op.RefreshTokenRequest.
type refreshRequest struct {
	tok    *gatehouse.OPRefreshToken
	scopes []string
}

var _ zop.RefreshTokenRequest = (*refreshRequest)(nil)

func (r *refreshRequest) GetAMR() []string            { return r.tok.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.tok.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.tok.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.tok.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.tok.UserID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }
func (r *refreshRequest) sessionID() string           { return r.tok.SessionID }

// clientCredentialsRequest is a client_credentials grant: the app acts on
// its own behalf, so the subject is its client id.
type clientCredentialsRequest struct {
	clientID string
	scopes   []string
}

func (c *clientCredentialsRequest) GetSubject() string    { return c.clientID }
func (c *clientCredentialsRequest) GetAudience() []string { return []string{c.clientID} }
func (c *clientCredentialsRequest) GetScopes() []string   { return c.scopes }
