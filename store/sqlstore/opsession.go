package sqlstore

import (
	"context"
	"time"
)

// ExpireOPSessionCodes makes the unredeemed authorization codes of a
// browser session (OPAuthRequest.SessionID, the session's public sid)
// expire at at, and returns how many: the session was signed out, and a
// code redeemed afterwards would give an app tokens for a session that
// ended, after the back-channel logout told the apps it had. Found by
// type assertion (package op), so gatehouse.Tx is unchanged. The
// expires_at bound lets the expiry index narrow the search to live rows.
func (t *tx) ExpireOPSessionCodes(ctx context.Context, tenantID, sessionID string, at time.Time) (int, error) {
	if sessionID == "" {
		return 0, nil
	}
	n, err := t.count(ctx, `UPDATE op_auth_requests SET expires_at = $3
		WHERE expires_at > $3 AND tenant_id = $1 AND session_id = $2 AND code_used_at IS NULL`,
		tenantID, sessionID, ts(normTime(at)))
	return int(n), err
}

var _ interface {
	ExpireOPSessionCodes(ctx context.Context, tenantID, sessionID string, at time.Time) (int, error)
} = (*tx)(nil)
