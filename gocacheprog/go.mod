module cbs-gocacheprog

go 1.24

require golang.org/x/mod v0.30.1-0.20260813213631-9239cba97fbe
