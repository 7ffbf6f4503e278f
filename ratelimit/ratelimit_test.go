package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestBurstThenRefuseThenRefill(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(10, 5)
	l.now = func() time.Time { return now }
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow("ip"); !ok {
			t.Fatalf("request %d refused within burst", i)
		}
	}
	ok, wait := l.Allow("ip")
	if ok || wait <= 0 || wait > 200*time.Millisecond {
		t.Fatalf("over burst: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow("other"); !ok {
		t.Fatal("another key shares the bucket")
	}
	now = now.Add(100 * time.Millisecond)
	if ok, _ := l.Allow("ip"); !ok {
		t.Fatal("not refilled after 1/rate")
	}
}

func TestSweepDropsIdleBuckets(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(100, 10)
	l.now = func() time.Time { return now }
	for _, k := range []string{"a", "b", "c"} {
		l.Allow(k)
	}
	now = now.Add(5 * time.Minute)
	l.Allow("d")
	if n := l.Len(); n != 1 {
		t.Fatalf("%d buckets after sweep, want 1", n)
	}
}

func TestMiddleware429(t *testing.T) {
	l := New(1, 1)
	h := l.Middleware(func(r *http.Request) string { return "k" }, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 {
		t.Fatalf("first: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("second: %d retry-after %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

func TestDisabled(t *testing.T) {
	l := New(0, 0)
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatal("disabled limiter refused")
		}
	}
}
