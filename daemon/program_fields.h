// The one table of program fields: each entry names a field of a program (the
// config file's programs, POST /api/workers), says where it may appear, how
// it is parsed into a ProgramSpec and written back as JSON, and what it means
// in one line for the docs. Config parsing, API validation, program JSON and
// the docs check all walk this table, so a new field is one entry. Pure.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "program_spec.h"
#include "sys_error.h"

namespace forkwatch {

struct ProgramField {
  std::string_view name;
  bool in_config = true;    // a field of a config program
  bool in_request = true;   // a field of a POST /api/workers request
  // A request may set it on top of a catalogue program (apply_overrides);
  // false for the fields a caller handles itself (name, command, program, args).
  bool overridable = true;
  // Over the API only with --allow-commands: it changes who or what runs.
  bool needs_allow_commands = false;
  // Sets the field in `spec`; errors read "<where>: <field>: <why>". Null
  // for a field its caller parses itself.
  Status (*parse)(const nlohmann::json& value, ProgramSpec& spec, const std::string& where) = nullptr;
  // Adds the field to a program's JSON (`j` is an object); null: not written.
  void (*to_json)(const ProgramSpec& spec, nlohmann::json& j) = nullptr;
  std::string_view doc;
};

// Every field, in the order error messages list them.
const std::vector<ProgramField>& program_fields();
const ProgramField* find_program_field(std::string_view name);
// The request's fields as "program, args, name, …", for "known:" lists.
std::string request_field_names();

// A field failure: "<where>: <field>: <why>".
SysError field_error(const std::string& where, std::string_view field, const std::string& why);

}  // namespace forkwatch
