package postgresttest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Roles of a Supabase project: the browser's anon key, a signed-in user, and
// the daemon's service-role key.
const (
	RoleAnon          = "anon"
	RoleAuthenticated = "authenticated"
	RoleService       = "service_role"
)

// keyTTL is the lifetime of the keys a Supabase project issues (about ten years).
const keyTTL = 10 * 365 * 24 * time.Hour

// SignJWT returns an HS256 JWT signed with secret carrying the role claim,
// the sub claim when sub is not empty, and an expiry ttl from now (a
// negative ttl gives an expired token). Signing HS256 with a byte key cannot
// fail, so it panics if it ever does.
func SignJWT(secret, role, sub string, ttl time.Duration) string {
	now := time.Now()
	claims := jwt.MapClaims{
		"iss":  "supabase",
		"role": role,
		"iat":  now.Unix(),
		"exp":  now.Add(ttl).Unix(),
	}
	if sub != "" {
		claims["sub"] = sub
		claims["aud"] = RoleAuthenticated
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		panic("postgresttest: sign JWT: " + err.Error())
	}
	return s
}

// AnonKey is the project's anon key, the one the browser holds.
func (s *Server) AnonKey() string { return SignJWT(s.secret, RoleAnon, "", keyTTL) }

// ServiceKey is the project's service-role key, the one the daemon holds.
func (s *Server) ServiceKey() string { return SignJWT(s.secret, RoleService, "", keyTTL) }

// UserToken is the access token of a signed-in user whose auth.uid() is sub.
func (s *Server) UserToken(sub string) string {
	return SignJWT(s.secret, RoleAuthenticated, sub, time.Hour)
}

// principal is who a request runs as.
type principal struct {
	role   string
	sub    string
	claims []byte // request.jwt.claims
}

// authenticate checks the apikey header as Supabase's gateway does (a request
// without a valid project key never reaches PostgREST), then takes the role
// from the Authorization bearer token if there is one, or else from the key.
func (s *Server) authenticate(r *http.Request) (*principal, *apiError) {
	apikey := r.Header.Get("apikey")
	if apikey == "" {
		return nil, newAPIError(http.StatusUnauthorized, "PGRST301", "No API key found in request",
			"", "No `apikey` request header or url param was found.")
	}
	if _, err := s.verify(apikey); err != nil {
		return nil, errJWT("Invalid API key: " + err.Error())
	}
	token := apikey
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || t == "" {
			return nil, errJWT("Expected Authorization: Bearer <token>")
		}
		token = t
	}
	claims, err := s.verify(token)
	if err != nil {
		return nil, errJWT(err.Error())
	}
	p := &principal{role: RoleAnon}
	if role, ok := claims["role"].(string); ok && role != "" {
		p.role = role
	} else {
		// PostgREST: the role in request.jwt.claims defaults to the anon role.
		claims["role"] = RoleAnon
	}
	if sub, ok := claims["sub"].(string); ok {
		p.sub = sub
	}
	p.claims, _ = json.Marshal(claims)
	return p, nil
}

func (s *Server) verify(token string) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
		return []byte(s.secret), nil
	}, jwt.WithValidMethods([]string{"HS256"}))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errors.New("JWT expired")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, errors.New("JWSError JWSInvalidSignature")
	case err != nil:
		return nil, errors.New("JWSError " + err.Error())
	}
	return claims, nil
}
