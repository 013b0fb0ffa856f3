# Unit tests of keyauth.rego, run with the pinned OPA: `opa test generator/render/` (tests/test_keyauth.py).
package envoy.authz_test

import rego.v1

import data.envoy.authz

# what External Secrets' template writes for a key: its SHA-256 digest and length
stored(key) := {"sha256": crypto.sha256(key), "length": count(key)}

keys := {"ml-endpoints": {
	"sentiment": {"primary": stored("mlk_Sentiment0Primary0aaaaaaaaaaaaaaa"), "secondary": stored("mlk_Sentiment1Secondary1bbbbbbbbbbbbb")},
	"weak": {"primary": stored("short"), "secondary": "12345678901234567890"},
	"odd": {"primary": {"sha256": crypto.sha256("mlk_Odd0Primary0cccccccccccccccccccc")}, "secondary": {"sha256": 7, "length": 40}},
}}

settings := {"trust_domain": "cluster.local"}

request(principal, authorization) := {"attributes": {
	"destination": {"principal": principal},
	"request": {"http": {"headers": {"authorization": authorization}}},
}}

sentiment := "spiffe://cluster.local/ns/ml-endpoints/sa/sentiment"

decide(principal, authorization) := decision if {
	decision := authz.allow with input as request(principal, authorization)
		with data.apikeys as keys
		with data.endpointgen as settings
}

allowed(principal, authorization) if decide(principal, authorization).allowed == true

test_primary_and_secondary_pass if {
	allowed(sentiment, "Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaaa")
	allowed(sentiment, "Bearer mlk_Sentiment1Secondary1bbbbbbbbbbbbb")
	allowed(sentiment, "bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaaa")
}

test_the_key_is_removed_before_the_model_sees_it if {
	decide(sentiment, "Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaaa").request_headers_to_remove == ["authorization"]
}

test_anything_else_is_401_with_an_empty_body if {
	every authorization in [
		"", "Bearer ", "Bearer", "Basic mlk_Sentiment0Primary0aaaaaaaaaaaaaaa",
		"mlk_Sentiment0Primary0aaaaaaaaaaaaaaa", "Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaab",
		"Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaa", "Bearer  mlk_Sentiment0Primary0aaaaaaaaaaaaaaa",
	] {
		decide(sentiment, authorization) == {
			"allowed": false, "http_status": 401,
			"headers": {"www-authenticate": "Bearer"}, "body": "",
		}
	}
}

test_the_key_belongs_to_the_destination_workload if {
	not allowed("spiffe://cluster.local/ns/ml-endpoints/sa/image-classifier", "Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaaa")
	not allowed("spiffe://evil.example/ns/ml-endpoints/sa/sentiment", "Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaaa")
	not allowed("spiffe://cluster.local/ns/ml-endpoints/sa/sentiment/x", "Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaaa")
}

test_short_or_malformed_keys_never_match if {
	weak := "spiffe://cluster.local/ns/ml-endpoints/sa/weak"
	not allowed(weak, "Bearer short")
	not allowed(weak, "Bearer 12345678901234567890")
	not allowed("spiffe://cluster.local/ns/ml-endpoints/sa/odd", "Bearer mlk_Odd0Primary0cccccccccccccccccccc")
}

test_an_endpoint_without_keys_admits_nothing if {
	not allowed("spiffe://cluster.local/ns/ml-endpoints/sa/missing", "Bearer mlk_Sentiment0Primary0aaaaaaaaaaaaaaa")
}
