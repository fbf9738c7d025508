// The one translation unit that compiles the non-template code of Asio and Beast. The project
// builds both in separate-compilation mode (see das_asio in the top-level CMakeLists.txt), so
// every other file that includes them only instantiates templates, which keeps builds short.
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
