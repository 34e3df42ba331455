package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/opscontrolroom/opsd/internal/redact"
)

type stringer string

func (s stringer) String() string { return string(s) }

// verboseError hides its secret from Error but shows it under %+v, as
// errors with stack traces or request dumps do; zap logs both.
type verboseError struct{ secret string }

func (e verboseError) Error() string { return "request failed" }

func (e verboseError) Format(f fmt.State, verb rune) {
	if f.Flag('+') {
		_, _ = io.WriteString(f, "request failed: Authorization: Bearer "+e.secret)
		return
	}
	_, _ = io.WriteString(f, e.Error())
}

func TestCoreJSONEncoder(t *testing.T) {
	t.Parallel()
	r := redact.New(cfgSecret, vercelToken)
	var buf bytes.Buffer
	inner := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&buf), zap.DebugLevel)
	log := zap.New(redact.NewCore(inner, r)).With(zap.String("db", "postgres://u:dbpass99@h/db"))

	log.Info("calling vercel with "+vercelToken,
		zap.String("run_id", "r1"),
		zap.String("key", cfgSecret),
		zap.String("password", "anything"),
		zap.ByteString("raw", []byte("x "+cfgSecret)),
		zap.Error(fmt.Errorf("deploy: %w", errors.New("401 for "+cfgSecret))),
		zap.NamedError("verbose", verboseError{secret: "abcdefgh12345"}),
		zap.Errors("errs", []error{errors.New(ghToken), nil}),
		zap.Stringer("stringer", stringer("s="+cfgSecret)),
		zap.Any("headers", map[string][]string{"Authorization": {"Bearer " + vercelToken}, "Accept": {"json"}}),
		zap.Any("struct", struct{ Token, Name string }{Token: cfgSecret, Name: "n"}),
		zap.Strings("list", []string{"ok", jwt}),
		zap.Dict("dict", zap.String("inner", doToken), zap.Int("n", 7)),
		zap.Object("obj", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddString("s", cfgSecret)
			return enc.AddArray("a", zapcore.ArrayMarshalerFunc(func(ae zapcore.ArrayEncoder) error {
				ae.AppendString(cfgSecret)
				return ae.AppendReflected(map[string]string{"t": cfgSecret})
			}))
		})),
		zap.Inline(zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddString("inlined", cfgSecret)
			return nil
		})),
		zap.Int("attempt", 2),
		zap.Bool("dry_run", true),
	)
	require.NoError(t, log.Sync())

	line := buf.String()
	for _, secret := range []string{cfgSecret, vercelToken, "dbpass99", "abcdefgh12345", ghToken, jwt, doToken, "anything"} {
		assert.NotContains(t, line, secret)
	}
	for _, kept := range []string{`"msg":"calling vercel with [REDACTED]"`, `"run_id":"r1"`, `"attempt":2`, `"dry_run":true`,
		`"db":"postgres://u:[REDACTED]@h/db"`, `"error":"deploy: 401 for [REDACTED]"`, `"Accept":["json"]`,
		`"Name":"n"`, `"n":7`, `"list":["ok","[REDACTED]"]`, `"inlined":"[REDACTED]"`, `"password":"[REDACTED]"`} {
		assert.Contains(t, line, kept)
	}
	assert.Equal(t, 1, strings.Count(line, "\n"), "one line: %s", line)
}

func TestCoreObserver(t *testing.T) {
	t.Parallel()
	r := redact.New(cfgSecret)
	inner, logs := observer.New(zap.InfoLevel)
	core := redact.NewCore(inner, r)
	assert.Equal(t, zap.InfoLevel, zapcore.LevelOf(core))
	log := zap.New(core)

	log.Debug("below the level " + cfgSecret)
	log.Warn("token "+cfgSecret, zap.String("k", cfgSecret), zap.Error(errors.New(cfgSecret)))

	require.Equal(t, 1, logs.Len())
	e := logs.All()[0]
	assert.Equal(t, "token [REDACTED]", e.Message)
	assert.Equal(t, map[string]any{"k": "[REDACTED]", "error": "[REDACTED]"}, e.ContextMap())
}

func TestCoreLeavesCallerFieldsAlone(t *testing.T) {
	t.Parallel()
	inner, logs := observer.New(zap.InfoLevel)
	log := zap.New(redact.NewCore(inner, redact.New(cfgSecret)))
	fields := []zap.Field{zap.String("a", "x"), zap.String("b", cfgSecret)}
	log.Info("m", fields...)
	assert.Equal(t, cfgSecret, fields[1].String, "the caller's slice is not modified")
	assert.Equal(t, map[string]any{"a": "x", "b": "[REDACTED]"}, logs.All()[0].ContextMap())
}
