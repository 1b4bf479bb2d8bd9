"""I/O, the ground floor: endpoints, Earthdata token and temporary S3 credentials, access to
local files, S3 and HTTPS, and source fingerprints. The only room that touches the network or a
secret."""
