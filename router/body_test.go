package router_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/realtime-gql/lambdaws/router"
	"github.com/rs/zerolog"
)

// TestResponseBodyEncoding: a text body travels as is; a body that is not UTF-8, or has a
// Content-Encoding (a gzip-encoded page), is base64-encoded with isBase64Encoded set, so API Gateway sends the client the exact bytes.
func TestResponseBodyEncoding(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     []byte
		encoding string
		wantB64  bool
	}{
		{"text", []byte(`{"data":{"ok":true}}`), "", false},
		{"binary", []byte{0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe}, "", true},
		{"content-encoded UTF-8", []byte("looks like text"), "gzip", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.encoding != "" {
					w.Header().Set("Content-Encoding", tc.encoding)
				}
				w.Write(tc.body)
			})
			r := router.New(router.Handlers{HTTP: h}, zerolog.Nop())

			out, err := r.Invoke(context.Background(), []byte(`{"version":"2.0","rawPath":"/graphql","requestContext":{"http":{"method":"GET","path":"/graphql"}}}`))
			if err != nil {
				t.Fatal(err)
			}
			var v2 events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out, &v2); err != nil {
				t.Fatal(err)
			}
			checkBody(t, "payload 2.0", v2.Body, v2.IsBase64Encoded, tc.body, tc.wantB64)

		})
	}
}

func checkBody(t *testing.T, version, body string, b64 bool, want []byte, wantB64 bool) {
	t.Helper()
	if b64 != wantB64 {
		t.Errorf("%s: isBase64Encoded = %v, want %v", version, b64, wantB64)
	}
	got := []byte(body)
	if b64 {
		var err error
		if got, err = base64.StdEncoding.DecodeString(body); err != nil {
			t.Fatalf("%s: body is not base64: %v", version, err)
		}
	}
	if string(got) != string(want) {
		t.Errorf("%s: body = %q, want %q", version, got, want)
	}
}
