# Sourced by the scripts that build the tests' Go tools (jaeger.sh, kubeconform.sh, podsecurity.sh,
# vegeta.sh). One set of flags for all of them: the Go build cache reuses a compiled package only
# when its flags match, so with one set the standard library and the modules they share compile
# once (.ci/setup.sh builds kubeconform and the Pod Security checker while Jaeger's modules
# download; measured one after the other with an empty cache: kubeconform 3.5 CPU s after the
# checker instead of 34, Jaeger 252 instead of 283).
#   no cgo             static binaries, like the released ones
#   -trimpath          the same binary on every machine
#   -N -l              no optimisations, no inlining: the tests feed these tools a few manifests
#                      and traces (kubeconform's unit test: 4.6 s against 4.4 s optimised), and
#                      they compile with about 30% less CPU (Jaeger: 291 against 408 CPU s)
#   -s -w              no symbol table, no DWARF: less to link
# vegeta is a load generator, which must not be the bottleneck: it keeps the optimisations
# (GO_LOADGEN_FLAGS) and so compiles its own copy of what it shares with the others (about 40 CPU s).
export CGO_ENABLED=0
GO_TOOL_FLAGS=(-trimpath "-gcflags=all=-N -l" "-ldflags=-s -w")
GO_LOADGEN_FLAGS=(-trimpath "-ldflags=-s -w")
