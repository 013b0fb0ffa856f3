# endpointgen key auth: the policy OPA-Envoy evaluates (decision path envoy/authz/allow) for every request a
# CUSTOM AuthorizationPolicy sends to the endpointgen-key-auth provider.
#
# - The endpoint is the destination workload's identity: its sidecar presents
#   spiffe://<trust domain>/ns/<namespace>/sa/<endpoint> (each endpoint has a ServiceAccount of its name).
# - Its keys are data.apikeys[<namespace>][<endpoint>].primary / .secondary, each {"sha256": <hex digest>,
#   "length": <bytes>}, loaded by `opa run --watch ... apikeys:/keys` from the files External Secrets keeps in
#   sync with Key Vault. The authorizer never holds a key, only its digest.
# - `Authorization: Bearer <primary or secondary key>` passes; anything else gets 401 with an empty body. A key
#   that is missing, too short or not in the expected form admits nothing, for its endpoint only.
# - The presented key's SHA-256 is compared with crypto.hmac.equal (constant time); nothing here prints it.
package envoy.authz

import rego.v1

default allow := {
	"allowed": false,
	"http_status": 401,
	"headers": {"www-authenticate": "Bearer"},
	"body": "",
}

allow := {
	"allowed": true,
	"headers": {},
	"request_headers_to_remove": ["authorization"],
} if {
	key_matches
}

min_key_length := 16

endpoint := {"namespace": parts[4], "name": parts[6]} if {
	principal := input.attributes.destination.principal
	is_string(principal)
	parts := split(principal, "/")
	count(parts) == 7
	parts[0] == "spiffe:"
	parts[1] == ""
	parts[2] == data.endpointgen.trust_domain
	parts[3] == "ns"
	parts[5] == "sa"
	parts[4] != ""
	parts[6] != ""
}

presented_key := key if {
	header := input.attributes.request.http.headers.authorization
	is_string(header)
	lower(substring(header, 0, 7)) == "bearer "
	key := substring(header, 7, -1)
	key != ""
	not contains(key, " ")
}

key_matches if {
	ep := endpoint
	key := presented_key
	stored := data.apikeys[ep.namespace][ep.name]
	is_object(stored)
	some slot in ["primary", "secondary"]
	candidate := stored[slot]
	is_object(candidate)
	is_number(candidate.length)
	candidate.length >= min_key_length
	is_string(candidate.sha256)
	count(candidate.sha256) == 64
	crypto.hmac.equal(crypto.sha256(key), candidate.sha256)
}
