# syntax=docker/dockerfile:1
# Static build (CGO off: SQLite is pure Go), distroless non-root runtime.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
ARG COMMIT=""
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/remediator/remediator/internal/version.Version=${VERSION} -X github.com/remediator/remediator/internal/version.Commit=${COMMIT}" \
      -o /out/remediator ./cmd/remediator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/remediator /usr/local/bin/remediator
COPY policies /etc/remediator/policies
USER 65532:65532
EXPOSE 9095
ENTRYPOINT ["/usr/local/bin/remediator"]
CMD ["serve", "--listen", "0.0.0.0:9095", "--policies", "/etc/remediator/policies", "--store", "sqlite:///var/lib/remediator/remediator.db"]
