#include "child_process.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "ptypilot/wire/program_paths.hpp"

extern char** environ;

namespace ptypilot {

std::string sibling_program(const std::string& name) {
  return (program_directory() / name).string();
}

ChildProcess::ChildProcess(const std::string& program, const std::vector<std::string>& args) {
  int out[2];
  if (pipe(out) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(program.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int spawned = posix_spawn(&pid_, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (spawned != 0) {
    close(out[0]);
    throw std::runtime_error("cannot run " + program + ": " + std::strerror(spawned));
  }
  // Only the first line is read; the pipe then stays open (and unread) until the child exits,
  // which is fine because the child prints nothing more on stdout.
  FILE* in = fdopen(out[0], "r");
  char* line = nullptr;
  std::size_t capacity = 0;
  const ssize_t n = in ? getline(&line, &capacity, in) : -1;
  const std::string text = n > 0 ? std::string(line, static_cast<std::size_t>(n)) : "";
  std::free(line);
  if (in) std::fclose(in);
  try {
    ready_ = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    throw std::runtime_error(program + " did not start (first line: '" + text + "')");
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace ptypilot
