-- One database per district node (docker-compose.yml).
CREATE DATABASE migrex_440303 OWNER migrex;
CREATE DATABASE migrex_510116 OWNER migrex;
CREATE DATABASE migrex_411302 OWNER migrex;
