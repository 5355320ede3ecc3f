#include <chrono>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

int main() {
    std::string mode, line;
    std::getline(std::cin, mode);
    if (mode == "hello") std::cout << "hello\n";
    else if (mode == "echo") { while (std::getline(std::cin, line)) std::cout << line << "\n"; }
    else if (mode == "re") throw std::runtime_error("boom");
    else if (mode == "cpu") { volatile unsigned long x = 0; for (;;) x++; }
    else if (mode == "sleep") std::this_thread::sleep_for(std::chrono::seconds(30));
    else if (mode == "mle") {
        std::vector<std::vector<char>> hold;
        for (;;) hold.emplace_back(16 << 20, 'x');
    }
    else if (mode == "ole") { std::string s(65536, 'x'); for (;;) std::cout << s; }
    else if (mode == "exit") return 3;
    return 0;
}
