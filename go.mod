module github.com/sluice-stream/sluice

go 1.26
