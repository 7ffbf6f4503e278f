package httperr

import (
	"errors"
	"testing"

	"github.com/gatehouse-sso/gatehouse"
)

func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 200},
		{gatehouse.FieldError("email", "bad"), 400},
		{&gatehouse.Error{Code: gatehouse.EINVALID, Reason: ReasonTooLarge}, 413},
		{gatehouse.Errorf(gatehouse.EUNAUTHORIZED, "x"), 401},
		{gatehouse.Errorf(gatehouse.EFORBIDDEN, "x"), 403},
		{gatehouse.Errorf(gatehouse.ENOTFOUND, "x"), 404},
		{gatehouse.Errorf(gatehouse.ECONFLICT, "x"), 409},
		{gatehouse.Errorf(gatehouse.EPRECONDITION, "x"), 412},
		{gatehouse.Errorf(gatehouse.EUNAVAILABLE, "x"), 503},
		{gatehouse.Errorf(gatehouse.EINTERNAL, "x"), 500},
		{errors.New("driver: connection reset"), 500},
	} {
		if got := Status(tc.err); got != tc.want {
			t.Errorf("Status(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
