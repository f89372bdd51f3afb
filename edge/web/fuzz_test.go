package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// FuzzOfficerAPI posts arbitrary bodies to the officer endpoints: every answer is a client
// error or a success, always JSON, never a server error, and nothing is audited from a body
// that was refused.
func FuzzOfficerAPI(f *testing.F) {
	f.Add(uint8(0), `{"id":"110105199005010018"}`)
	f.Add(uint8(0), `{"id":"110105199005010017","test_only":true}`)
	f.Add(uint8(1), `{"ref":1,"outcome":"PASS","reason":"seen"}`)
	f.Add(uint8(1), `{"ref":18446744073709551615,"outcome":"DENY_POPUP_9","reason":"x"}`)
	f.Add(uint8(2), `{"id":"11010519491231002X","work_proof":"a","residence_proof":"b","test_proof":"c"}`)
	f.Add(uint8(3), `{"officer":"x","pin":"1"}`)
	f.Add(uint8(0), `{"id":`)
	f.Add(uint8(1), `[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`)
	fx := newFixture(f, "highway-checkpoint", true, false)
	token := fx.login(f)
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := []string{"/api/check", "/api/override", "/api/register", "/api/login"}[int(which)%4]
		before := fx.audit.Seq()
		var out map[string]any
		req, _ := http.NewRequest("POST", fx.srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := fx.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s %q: answer is not JSON: %v", path, body, err)
		}
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %q: %d %v", path, body, resp.StatusCode, out)
		}
		if resp.StatusCode != 200 && fx.audit.Seq() != before {
			t.Fatalf("%s %q refused (%d) but audited", path, body, resp.StatusCode)
		}
	})
}
