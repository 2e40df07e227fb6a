"""The staff console under `/console/`: server-rendered pages on the full service only (a public
node never imports this package), signed in with a password and a second factor, reading and
acting through the same domain functions as the staff API."""
