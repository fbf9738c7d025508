# Sourced by bench/run.sh and bench/replication.sh: nginx answering 204 on loopback, the HTTP
# ceiling of das-bench on this machine.
# start_nginx DIR PORT: writes DIR/nginx.conf, starts nginx in the foreground in the background,
# sets NGINX_PID (the caller stops it by PID).
start_nginx() {
  local dir="$1" port="$2"
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$port;
    location / { return 204; }
  }
}
CONF
  nginx -c "$dir/nginx.conf" -p "$dir" &
  NGINX_PID=$!
  sleep 0.5
}
